"""Planning with mctx over a learned model: pure functions, jitted by the caller.

`Networks` holds the three Haiku `apply` functions. `root_fn` embeds a batch of
observations; `make_recurrent_fn` steps the learned dynamics for mctx, taking
the value and prior of the *next* hidden state; `plan` runs one search and
picks the actions.
"""
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import mctx

from muax.core import search as core_search
from muax.core.types import SearchBudget
from muax.core.types import SearchConfig
from muax.support import logits_to_scalar

class Networks(NamedTuple):
  """Haiku `apply` functions of the three MuZero networks."""
  representation: Callable  # (params, obs[B, ...]) -> s[B, ...]
  prediction: Callable      # (params, s) -> (value_logits[B, V], policy_logits[B, A])
  dynamic: Callable         # (params, s, a[B]) -> (reward_logits[B, V], next_s)


def root_fn(nets: Networks, params: Any, obs: jax.Array, *,
            support_size: int) -> mctx.RootFnOutput:
  """Root of the search: embedding, prior logits and value of `obs[B, ...]`."""
  s = nets.representation(params["representation"], obs)
  value_logits, prior_logits = nets.prediction(params["prediction"], s)
  return mctx.RootFnOutput(prior_logits=prior_logits,
                           value=logits_to_scalar(value_logits, support_size),
                           embedding=s)


def make_recurrent_fn(nets: Networks, *, support_size: int, discount: float) -> Callable:
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


def plan(nets: Networks, params: Any, rng_key: jax.Array, obs: jax.Array,
         invalid_actions: Optional[jax.Array], temperature: jax.typing.ArrayLike,
         dirichlet_fraction: jax.typing.ArrayLike, dirichlet_alpha: jax.typing.ArrayLike,
         pb_c_init: jax.typing.ArrayLike, pb_c_base: jax.typing.ArrayLike,
         gumbel_scale: jax.typing.ArrayLike, *,
         policy: str, support_size: int, discount: float, num_simulations: int,
         max_depth: Optional[int] = None, loop_fn: Callable = jax.lax.fori_loop,
         qtransform: Optional[Callable] = None, max_num_considered_actions: int = 16,
         root: Optional[mctx.RootFnOutput] = None,
         recurrent_fn: Optional[Callable] = None) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """Searches from a batch of observations and chooses actions.

  `temperature == 0` is greedy and deterministic: no Dirichlet or Gumbel noise,
  and the most visited action (muzero) or the search's choice (gumbel). The
  search itself is `muax.core.search.run`.

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
  config = SearchConfig.of(temperature, dirichlet_fraction, dirichlet_alpha, pb_c_init,
                          pb_c_base, gumbel_scale)
  budget = SearchBudget(num_simulations, max_depth, max_num_considered_actions, loop_fn,
                        qtransform)
  return search(nets, params, rng_key, obs, invalid_actions, config, budget, policy=policy,
                support_size=support_size, discount=discount, root=root,
                recurrent_fn=recurrent_fn)


def search(nets: Networks, params: Any, rng_key: jax.Array, obs: jax.Array,
           invalid_actions: Optional[jax.Array], config: SearchConfig,
           budget: SearchBudget, *, policy: str, support_size: int, discount: float,
           root: Optional[mctx.RootFnOutput] = None,
           recurrent_fn: Optional[Callable] = None) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """`plan` with its settings as a `SearchConfig` and a `SearchBudget`."""
  if root is None:
    root = root_fn(nets, params, obs, support_size=support_size)
  if recurrent_fn is None:
    recurrent_fn = make_recurrent_fn(nets, support_size=support_size, discount=discount)
  out = core_search.run(policy, params, rng_key, lambda _: root, recurrent_fn,
                        invalid_actions, config, budget)
  return out.action, out.pi, out.value


class Plans:
  """A variant's `plan` jitted once per search budget.

  `plans(budget)` (`SearchBudget`'s fields in order) is the jitted
  `(params, key, obs[B, ...], mask[B, A], hyper[6]) -> packed [B, P]`, arrays
  only (JAX's fastest dispatch); `hyper` holds the six `SearchConfig` settings
  in `SEARCH_FIELDS` order (`checks.search_settings`).
  """

  def __init__(self, plan: Callable):
    self._plan, self._jitted = plan, {}

  def __call__(self, budget: tuple) -> Callable:
    fn = self._jitted.get(budget)
    if fn is None:
      plan, budget_ = self._plan, SearchBudget(*budget)

      def packed(params, rng_key, obs, invalid_actions, hyper):
        return plan(params, rng_key, obs, invalid_actions, SearchConfig.unpack(hyper), budget_)

      fn = self._jitted[budget] = jax.jit(packed)
    return fn

  @property
  def compiled(self) -> int:
    """Programs compiled so far: one per budget and input shape."""
    return sum(fn._cache_size() for fn in self._jitted.values())
