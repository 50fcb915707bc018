"""The one search entry point: every variant and reanalysis search through `run`.

`run` takes the variant's root and recurrent functions (mctx's), the traced
`SearchConfig` and the static `SearchBudget`, and handles what every search
shares: the keys (greedy searches use fixed ones, so a greedy decision is a
function of the observation alone), the exploration noise switched off at
temperature 0, the mctx policy, and the choice of the action.
"""
from typing import Any, Callable, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import mctx

from muax.core.types import SearchBudget
from muax.core.types import SearchConfig

__all__ = ["POLICIES", "SearchOutput", "run", "select_action", "split_keys"]

POLICIES = ("muzero", "gumbel", "stochastic")  # the mctx policies `run` drives

# Greedy searches use fixed keys: mctx breaks ties between equal scores with
# tiny random noise, and sampled variants draw their root candidates.
_GREEDY_SEED = 0


@chex.dataclass(frozen=True, mappable_dataclass=False)
class SearchOutput:
  """One search's decision for a batch of roots."""
  action: chex.Array  # [B] the chosen root action (a slot, for sampled variants)
  pi: chex.Array  # [B, A] the search policy (mctx's action weights)
  value: chex.Array  # [B] the root's search value
  root: mctx.RootFnOutput  # the root the search started from (its embedding)


def split_keys(rng_key: chex.PRNGKey,
               explore: chex.Array) -> Tuple[chex.Array, chex.Array, chex.Array]:
  """`(k_root, k_search, k_action)` of a search: from `rng_key` when
  `explore`, fixed otherwise. Accepts raw (`[2]` uint32) and typed keys."""
  if jax.dtypes.issubdtype(rng_key.dtype, jax.dtypes.prng_key):
    rng_key = jax.random.key_data(rng_key)
  k_search, k_action = jax.random.split(rng_key)
  fixed = jax.random.split(jax.random.PRNGKey(_GREEDY_SEED), 3)
  return (jnp.where(explore, jax.random.fold_in(k_action, 0), fixed[0]),
          jnp.where(explore, k_search, fixed[1]),
          jnp.where(explore, k_action, fixed[2]))


def run(policy: str, params: Any, rng_key: chex.PRNGKey,
        root: Callable[[chex.PRNGKey], mctx.RootFnOutput], recurrent_fn: Callable,
        invalid_actions: Optional[chex.Array], config: SearchConfig, budget: SearchBudget,
        *, chance_recurrent_fn: Optional[Callable] = None,
        default_qtransform: Optional[Callable] = None) -> SearchOutput:
  """Searches from a batch of roots and chooses actions.

  Args:
    policy: 'muzero' (`mctx.muzero_policy`, actions sampled from visit
      counts `N^(1/T)`), 'gumbel' (`mctx.gumbel_muzero_policy`, its own
      choice; T > 0 only switches the Gumbel noise on) or 'stochastic'
      (`mctx.stochastic_muzero_policy`; `recurrent_fn` is the decision
      function and `chance_recurrent_fn` the chance one).
    params: the networks' parameters, passed to the recurrent functions.
    rng_key: a PRNG key (ignored when `config.temperature == 0`).
    root: `key -> mctx.RootFnOutput` for `[B]` roots (the key is for variants
      that sample at the root; others ignore it).
    recurrent_fn: mctx's `recurrent_fn(params, key, action[B], embedding)`.
    invalid_actions: `[B, A]`, 1 = invalid; None: every action valid.
    config: the traced settings.
    budget: the static settings.
    chance_recurrent_fn: the chance function of 'stochastic'.
    default_qtransform: the qtransform when `budget.qtransform` is None
      (None: the mctx policy's own default).

  Returns:
    the decision (`SearchOutput`).
  """
  explore = config.explore
  k_root, k_search, k_action = split_keys(rng_key, explore)
  root_out = root(k_root)
  noise = explore.astype(jnp.float32)
  common = dict(params=params, rng_key=k_search, root=root_out,
                num_simulations=budget.num_simulations, invalid_actions=invalid_actions,
                max_depth=budget.max_depth, loop_fn=budget.loop_fn)
  qtransform = budget.qtransform if budget.qtransform is not None else default_qtransform
  if qtransform is not None:
    common["qtransform"] = qtransform
  puct = dict(dirichlet_fraction=config.dirichlet_fraction * noise,
              dirichlet_alpha=config.dirichlet_alpha, pb_c_init=config.pb_c_init,
              pb_c_base=config.pb_c_base)
  if policy == "gumbel":
    out = mctx.gumbel_muzero_policy(
        recurrent_fn=recurrent_fn, gumbel_scale=config.gumbel_scale * noise,
        max_num_considered_actions=budget.max_num_considered_actions, **common)
  elif policy == "stochastic":
    out = mctx.stochastic_muzero_policy(decision_recurrent_fn=recurrent_fn,
                                        chance_recurrent_fn=chance_recurrent_fn,
                                        **common, **puct)
  elif policy == "muzero":
    out = mctx.muzero_policy(recurrent_fn=recurrent_fn, **common, **puct)
  else:
    raise ValueError(f"unknown search policy {policy!r}: choose one of {POLICIES}")
  summary = out.search_tree.summary()
  if policy == "gumbel":
    action = out.action
  else:
    invalid = (jnp.zeros_like(summary.visit_counts) if invalid_actions is None
               else invalid_actions)
    action = select_action(k_action, summary.visit_counts, invalid, config.temperature)
  return SearchOutput(action=action, pi=out.action_weights, value=summary.value,
                      root=root_out)


def select_action(rng_key: chex.PRNGKey, visit_counts: chex.Array,
                  invalid_actions: chex.Array, temperature: chex.Array) -> chex.Array:
  """`[B]`: samples `N^(1/T)` for T > 0, else the most visited valid action.

  All-zero visits (fewer simulations than needed) fall back to greedy.
  """
  counts = visit_counts.astype(jnp.float32)
  valid = invalid_actions == 0
  greedy = jnp.argmax(jnp.where(valid, counts, -1.), axis=-1)
  logits = jnp.where(valid & (counts > 0), jnp.log(jnp.maximum(counts, 1e-30)), -jnp.inf)
  safe_t = jnp.maximum(temperature, 1e-6)
  sampled = jax.random.categorical(rng_key, logits / safe_t, axis=-1)
  sampled = jnp.where(jnp.isfinite(jnp.max(logits, axis=-1)), sampled, greedy)
  return jnp.where(temperature > 0, sampled, greedy)
