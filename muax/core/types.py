"""The core's frozen types: what the search, the learner and the runners exchange.

Every type is a frozen `chex.dataclass` (a pytree, so it passes through
`jax.jit`, `jax.lax.scan` and `jax.vmap` whole) except `SearchBudget`, which
holds the settings that shape the compiled program and is hashable, for
`static_argnums`.
"""
import dataclasses
from typing import Any, Callable, Dict, Optional

import chex
import jax
import jax.numpy as jnp

__all__ = ["LearnerOutput", "SearchBudget", "SearchConfig", "TrainState", "SEARCH_FIELDS"]

# `SearchConfig`'s fields in the order `SearchConfig.packed` stores them.
SEARCH_FIELDS = ("temperature", "dirichlet_fraction", "dirichlet_alpha", "pb_c_init",
                 "pb_c_base", "gumbel_scale")


@chex.dataclass(frozen=True, mappable_dataclass=False)
class SearchConfig:
  """Search settings that are traced: changing one never recompiles.

  `temperature == 0` is greedy and deterministic: no Dirichlet or Gumbel
  noise, and a fixed key for the search's tie-breaks.
  """
  temperature: chex.Array  # [] > 0 samples visit counts N^(1/T); 0 is greedy
  dirichlet_fraction: chex.Array  # [] share of Dirichlet noise in the root prior (muzero)
  dirichlet_alpha: chex.Array  # [] its concentration
  pb_c_init: chex.Array  # [] pUCT exploration constants (muzero)
  pb_c_base: chex.Array  # []
  gumbel_scale: chex.Array  # [] scale of the Gumbel noise (gumbel)

  @classmethod
  def of(cls, *values: Any) -> "SearchConfig":
    """From the six settings given in `SEARCH_FIELDS` order."""
    return cls(**dict(zip(SEARCH_FIELDS, values, strict=True)))

  @classmethod
  def unpack(cls, packed: chex.Array) -> "SearchConfig":
    """From a `[6]` array in `SEARCH_FIELDS` order (one transfer for the six)."""
    return cls(**{name: packed[i] for i, name in enumerate(SEARCH_FIELDS)})

  @classmethod
  def greedy(cls) -> "SearchConfig":
    """Temperature 0 with `act`'s default pUCT settings (reanalysis, tests)."""
    return cls(temperature=jnp.float32(0.), dirichlet_fraction=jnp.float32(0.),
               dirichlet_alpha=jnp.float32(0.3), pb_c_init=jnp.float32(1.25),
               pb_c_base=jnp.float32(19652.), gumbel_scale=jnp.float32(1.))

  @property
  def explore(self) -> chex.Array:
    """`[]` bool: temperature > 0, so noise and sampling are on."""
    return self.temperature > 0


@dataclasses.dataclass(frozen=True)
class SearchBudget:
  """Search settings that shape the compiled program (static, hashable)."""
  num_simulations: int
  max_depth: Optional[int] = None
  max_num_considered_actions: int = 16  # gumbel
  loop_fn: Callable = jax.lax.fori_loop
  qtransform: Optional[Callable] = None  # None: the policy's default


@chex.dataclass(frozen=True, mappable_dataclass=False)
class TrainState:
  """Everything learning depends on: a run state that saves it resumes exactly.

  Updates are pure functions `(TrainState, batch) -> (TrainState,
  LearnerOutput)` (`muax.core.learner`).
  """
  params: Any  # the networks' parameters
  opt_state: Any  # the optimizer's state for `params`
  target_params: Any  # like `params`: the target network (reanalysis); else None
  count: chex.Array  # [] int32 updates taken
  key: chex.Array  # [2] uint32 the key learning consumes next (reanalysis searches)


@chex.dataclass(frozen=True, mappable_dataclass=False)
class LearnerOutput:
  """What one update returns besides the new state (leading `[U]` under a scan)."""
  metrics: Dict[str, chex.Array]  # [] each: loss, grad_norm, the loss terms...
  priority: chex.Array  # [B] each window's value error: its new replay priority
  skipped: chex.Array  # [] 1. when the update was skipped (non-finite), else 0.
