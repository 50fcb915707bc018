"""Planning with mctx over a learned model: pure functions, jitted by the caller.

`Networks` holds the three Haiku `apply` functions. `root_fn` embeds a batch of
observations; `make_recurrent_fn` steps the learned dynamics for mctx, taking
the value and prior of the *next* hidden state; `plan` runs one search and
picks the actions.
"""
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import mctx

from muax.support import logits_to_scalar

POLICIES = ("muzero", "gumbel")
# Policies implemented by subclasses of `MuZero` in their own modules.
VARIANTS = {"stochastic": ("muax.stochastic", "StochasticMuZero"),
            "sampled": ("muax.sampled", "SampledMuZero")}


class Networks(NamedTuple):
  """Haiku `apply` functions of the three MuZero networks."""
  representation: Callable  # (params, obs[B, ...]) -> s[B, ...]
  prediction: Callable      # (params, s) -> (value_logits[B, V], policy_logits[B, A])
  dynamic: Callable         # (params, s, a[B]) -> (reward_logits[B, V], next_s)


def root_fn(nets: Networks, params, obs, *, support_size: int) -> mctx.RootFnOutput:
  """Root of the search: embedding, prior logits and value of `obs[B, ...]`."""
  s = nets.representation(params["representation"], obs)
  value_logits, prior_logits = nets.prediction(params["prediction"], s)
  return mctx.RootFnOutput(prior_logits=prior_logits,
                           value=logits_to_scalar(value_logits, support_size),
                           embedding=s)


def make_recurrent_fn(nets: Networks, *, support_size: int, discount: float):
  """Builds mctx's `recurrent_fn(params, rng_key, action[B], embedding)`."""

  def recurrent_fn(params, rng_key, action, embedding):
    del rng_key
    reward_logits, next_s = nets.dynamic(params["dynamic"], embedding, action)
    # The value and prior belong to the state the action leads to.
    value_logits, prior_logits = nets.prediction(params["prediction"], next_s)
    reward = logits_to_scalar(reward_logits, support_size)
    output = mctx.RecurrentFnOutput(
        reward=reward,
        discount=jnp.full_like(reward, discount),
        prior_logits=prior_logits,
        value=logits_to_scalar(value_logits, support_size))
    return output, next_s

  return recurrent_fn


def plan(nets: Networks, params, rng_key, obs, invalid_actions, temperature,
         dirichlet_fraction, dirichlet_alpha, pb_c_init, pb_c_base, gumbel_scale, *,
         policy: str, support_size: int, discount: float, num_simulations: int,
         max_depth: Optional[int] = None, loop_fn=jax.lax.fori_loop,
         qtransform=None, max_num_considered_actions: int = 16, root=None,
         recurrent_fn=None):
  """Searches from a batch of observations and chooses actions.

  `temperature == 0` is greedy and deterministic: no Dirichlet or Gumbel noise,
  and the most visited action (muzero) or the search's choice (gumbel).

  Args:
    obs: `[B, ...]` observations.
    invalid_actions: `[B, A]`, 1 = invalid.
    temperature: scalar; visit counts are sampled as `N^(1/temperature)`.

  Returns:
    `(action[B], pi[B, A], value[B])`: pi is the search policy, value the
    search value of the root.

  `root` and `recurrent_fn` replace `root_fn` and `make_recurrent_fn` (model
  variants whose embedding carries more than the hidden state).
  """
  if jax.dtypes.issubdtype(rng_key.dtype, jax.dtypes.prng_key):
    rng_key = jax.random.key_data(rng_key)
  k_search, k_action = jax.random.split(rng_key)
  explore = temperature > 0
  # mctx breaks ties between equal scores with tiny random noise; greedy play
  # uses a fixed key for it so that it is a function of the observation alone.
  k_search = jnp.where(explore, k_search, jax.random.PRNGKey(0))
  if root is None:
    root = root_fn(nets, params, obs, support_size=support_size)
  if recurrent_fn is None:
    recurrent_fn = make_recurrent_fn(nets, support_size=support_size, discount=discount)
  explore = explore.astype(jnp.float32)
  common = dict(params=params, root=root, recurrent_fn=recurrent_fn,
                num_simulations=num_simulations, invalid_actions=invalid_actions,
                max_depth=max_depth, loop_fn=loop_fn)
  if qtransform is not None:
    common["qtransform"] = qtransform
  if policy == "gumbel":
    out = mctx.gumbel_muzero_policy(
        rng_key=k_search, max_num_considered_actions=max_num_considered_actions,
        gumbel_scale=gumbel_scale * explore, **common)
    action = out.action
  else:
    out = mctx.muzero_policy(
        rng_key=k_search, dirichlet_fraction=dirichlet_fraction * explore,
        dirichlet_alpha=dirichlet_alpha, pb_c_init=pb_c_init, pb_c_base=pb_c_base,
        **common)
    action = _select_action(k_action, out.search_tree.summary().visit_counts,
                            invalid_actions, temperature)
  return action, out.action_weights, out.search_tree.summary().value


def _select_action(rng_key, visit_counts, invalid_actions, temperature):
  """Samples `N^(1/T)` for T > 0, else the most visited valid action."""
  counts = visit_counts.astype(jnp.float32)
  valid = invalid_actions == 0
  greedy = jnp.argmax(jnp.where(valid, counts, -1.), axis=-1)
  logits = jnp.where(valid & (counts > 0), jnp.log(jnp.maximum(counts, 1e-30)), -jnp.inf)
  # All-zero visits (num_simulations smaller than needed) fall back to greedy.
  safe_t = jnp.maximum(temperature, 1e-6)
  sampled = jax.random.categorical(rng_key, logits / safe_t, axis=-1)
  sampled = jnp.where(jnp.isfinite(jnp.max(logits, axis=-1)), sampled, greedy)
  return jnp.where(temperature > 0, sampled, greedy)
