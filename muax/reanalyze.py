"""Reanalyze: fresh learning targets for replayed windows (Schrittwieser et al.,
2021, "Online and offline RL by planning with a learned model").

Targets stored in replay were computed by the network of the day the step was
played. Reanalysis recomputes them for the first `fraction` of the rows of
each batch, all rows in one batched pass, inside the update:

- policy targets: a search (no exploration noise) from every observation of
  those windows, with the target network or the latest one;
- value targets: `Rn` keeps its n-step rewards and swaps the old bootstrap
  value for the target network's value of the bootstrap observation:
  `Rn' = Rn + g^n (v_target(o_{t+n}) - v_old)`, where the step `t+n` is in
  replay (`batch.next_discount` > 0); other steps keep `Rn`.

The target network is a copy of the parameters, refreshed every
`target_update_interval` updates. Batches need the bootstrap fields, from
`buffer.sample(..., bootstrap=(n, discount))` (`fit` asks for them).
"""
import dataclasses
import math
from typing import Any, Dict, Optional, Tuple, Union

import jax
import jax.numpy as jnp

from muax import checks
from muax.core import learner
from muax.core.types import SearchBudget
from muax.core.types import SearchConfig
from muax.support import logits_to_scalar

__all__ = ["Reanalyze", "reanalyze_batch"]

SEARCH_WITH = ("target", "latest")


@dataclasses.dataclass(frozen=True)
class Reanalyze:
  """Settings of reanalysis.

  Attributes:
    fraction: share of each batch's rows reanalysed, in (0, 1].
    num_simulations: simulations of each reanalysis search.
    target_update_interval: updates between refreshes of the target network.
    search_with: 'target' (the target network) or 'latest' (the parameters
      being trained) for the policy search; values always use the target.
    policy: recompute policy targets.
    value: recompute value bootstraps.
    seed: seed of the searches' random keys (tie-breaking).
  """
  fraction: float = 0.5
  num_simulations: int = 25
  target_update_interval: int = 100
  search_with: str = "target"
  policy: bool = True
  value: bool = True
  seed: int = 0

  def __post_init__(self) -> None:
    checks.number("fraction", self.fraction, low=0., high=1., strict=True,
                  what="a number in (0, 1]", label="Reanalyze fraction",
                  not_a_number=ValueError)
    for name in ("num_simulations", "target_update_interval"):
      checks.positive_int(name, getattr(self, name), label=f"Reanalyze {name}",
                          echo_name=False)
    if self.search_with not in SEARCH_WITH:
      raise ValueError(f"Reanalyze search_with must be one of {SEARCH_WITH}, got "
                       f"{self.search_with!r}")
    if not (self.policy or self.value):
      raise ValueError("Reanalyze with policy=False and value=False does nothing: "
                       "turn one of them on, or do not reanalyse")

  def rows(self, batch_size: int) -> int:
    """Rows of a batch of `batch_size` that are reanalysed (at least one)."""
    return max(1, min(batch_size, math.ceil(self.fraction * batch_size)))


def as_reanalyze(value: Optional[Union[float, Reanalyze]]) -> Optional[Reanalyze]:
  """`None`, a fraction or a `Reanalyze` -> `Reanalyze` or None."""
  if value is None or isinstance(value, Reanalyze):
    return value
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise TypeError(f"reanalyze must be None, a fraction in (0, 1] or a muax.Reanalyze, "
                    f"got {value!r}")
  return None if value == 0 else Reanalyze(fraction=float(value))


def fresh_state(params: Any, opt_state: Any, config: Optional[Reanalyze]) -> Any:
  """A `TrainState` at update 0 for the reanalysis setting `config` (None: off):
  the target network starts as `params`, the key from `config.seed`."""
  seed = 0 if config is None else config.seed
  return learner.init_state(params, opt_state, key=jax.random.PRNGKey(seed),
                            with_target=config is not None)


def reanalyze_batch(model: Any, params: Any, target_params: Any, rng_key: jax.Array, batch: Any,
                    config: Reanalyze) -> Tuple[Any, Dict[str, jax.Array]]:
  """Traced: `batch` with fresh targets in its first `config.rows(B)` rows.

  Args:
    model: the `MuZero` whose networks, policy and discounts are used.
    params: the parameters being trained.
    target_params: the target network's parameters.
    rng_key: key for the searches.
    batch: `[B, K, ...]` with `next_obs`, `next_v`, `next_discount`, `inside`.
    config: the settings.

  Returns:
    `(batch, metrics)`: metrics `reanalyze_value_shift` (mean |Rn' - Rn|) and
    `reanalyze_policy_shift` (mean total variation between old and new pi)
    over the reanalysed steps.
  """
  b, k = batch.obs.shape[:2]
  rows = config.rows(b)
  head = batch[:rows]
  flat = lambda x: x.reshape((rows * k,) + x.shape[2:])  # noqa: E731
  metrics = {}
  pi, rn = batch.pi, jnp.asarray(batch.Rn, jnp.float32)
  if config.policy:
    search_params = target_params if config.search_with == "target" else params
    invalid = None if head.mask is None else ~flat(jnp.asarray(head.mask, bool))
    if invalid is None:
      invalid = jnp.zeros((rows * k, model.num_actions), jnp.int32)
    # Greedy search settings: no exploration noise (temperature 0).
    _, new_pi, _ = model.search(search_params, rng_key, flat(head.obs),
                                invalid.astype(jnp.int32), SearchConfig.greedy(),
                                SearchBudget(num_simulations=config.num_simulations))
    old = jnp.asarray(head.pi, jnp.float32)
    new_pi = jnp.where(head.inside[..., None], new_pi.reshape(old.shape), old)
    metrics["reanalyze_policy_shift"] = 0.5 * jnp.mean(jnp.sum(jnp.abs(new_pi - old), -1))
    pi = jnp.concatenate([new_pi, jnp.asarray(batch.pi, jnp.float32)[rows:]], 0)
  if config.value:
    s = model.networks.representation(target_params["representation"], flat(head.next_obs))
    value_logits, _ = model.networks.prediction(target_params["prediction"], s)
    fresh = logits_to_scalar(value_logits, model.support_size).reshape(rows, k)
    discount = jnp.asarray(head.next_discount, jnp.float32)
    new_rn = rn[:rows] + discount * (fresh - jnp.asarray(head.next_v, jnp.float32))
    new_rn = jnp.where(discount != 0, new_rn, rn[:rows])
    metrics["reanalyze_value_shift"] = jnp.mean(jnp.abs(new_rn - rn[:rows]))
    rn = jnp.concatenate([new_rn, rn[rows:]], 0)
  return batch.replace(pi=jax.lax.stop_gradient(pi), Rn=jax.lax.stop_gradient(rn)), metrics
