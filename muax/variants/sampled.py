"""Sampled MuZero's pure functions and its `Variant` (`muax.sampled` holds the
model class and networks, and re-exports these).

K actions are sampled from the squashed Gaussian policy at every node and
carried in the embedding, `(s, candidates[B, K, D])`; mctx searches over the
K slots. See `muax.sampled` for the maths.
"""
from typing import Any, Callable, Dict, Optional, Tuple, Union

import gymnasium as gym
import jax
import jax.numpy as jnp
import mctx
import numpy as np

from muax import checkpoint
from muax.core import search as core_search
from muax.core.types import SearchBudget
from muax.core.types import SearchConfig
from muax import search
from muax.loss import categorical_loss
from muax.loss import scale_gradient
from muax.loss import value_error
from muax.loss import weighted_mean
from muax.core.variant import Variant
from muax.support import logits_to_scalar
from muax.transition import Transition
from muax.transition import check_batch_shapes
from muax.variants import muzero

__all__ = [
    "LOG_STD_MAX", "LOG_STD_MIN", "default_loss_fn", "from_env", "log_prob",
    "make_recurrent_fn", "make_variant", "plan", "qtransform_completed_by_parent",
    "root_fn", "sample_actions", "sampled_loss", "to_env",
]

LOG_STD_MIN = -5.
LOG_STD_MAX = 2.
# `u` is clipped this far inside (-1, 1) before `atanh`: actions on the Box's
# edge (float32 round-trips of tanh(x) for |x| > ~9) stay finite in the loss.
_EDGE = 1e-5

# -- the squashed Gaussian ----------------------------------------------------

def _split(policy_params):
  mean, log_std = jnp.split(jnp.asarray(policy_params, jnp.float32), 2, axis=-1)
  return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def sample_actions(rng_key: jax.Array, policy_params: jax.typing.ArrayLike,
                   num_samples: int) -> jax.Array:
  """K normalised actions `u[B, K, D]` in (-1, 1) from `policy_params[B, 2D]`."""
  mean, log_std = _split(policy_params)
  noise = jax.random.normal(rng_key, (mean.shape[0], num_samples, mean.shape[-1]))
  return jnp.tanh(mean[:, None] + jnp.exp(log_std)[:, None] * noise)


def log_prob(policy_params: jax.typing.ArrayLike, u: jax.typing.ArrayLike) -> jax.Array:
  """`log N(atanh(u); mean, std)` summed over D: `[B, K]` for `u[B, K, D]`.

  The log-density of the squashed action differs from this by the Jacobian
  `-sum log(1 - u^2)`, which does not depend on the parameters and is left
  out of the loss.
  """
  mean, log_std = _split(policy_params)
  x = jnp.arctanh(jnp.clip(u, -1. + _EDGE, 1. - _EDGE))
  z = (x - mean[:, None]) * jnp.exp(-log_std)[:, None]
  return jnp.sum(-0.5 * jnp.square(z) - log_std[:, None] - 0.5 * np.log(2. * np.pi), -1)


def to_env(u: jax.typing.ArrayLike, low: jax.typing.ArrayLike,
           high: jax.typing.ArrayLike) -> Union[jax.Array, np.ndarray]:
  """Normalised `u` in [-1, 1] to the Box's units."""
  return low + (u + 1.) * (0.5 * (high - low))


def from_env(a: jax.typing.ArrayLike, low: jax.typing.ArrayLike,
             high: jax.typing.ArrayLike) -> jax.Array:
  """The Box's units to normalised `u` in [-1, 1] (clipped)."""
  return jnp.clip(2. * (a - low) / (high - low) - 1., -1., 1.)


# -- search -------------------------------------------------------------------

def root_fn(nets: search.Networks, params: Any, rng_key: jax.Array, obs: jax.Array, *,
            num_samples: int, support_size: int) -> mctx.RootFnOutput:
  """Root of the search over `num_samples` actions sampled at `obs[B, ...]`."""
  s = nets.representation(params["representation"], obs)
  value_logits, policy_params = nets.prediction(params["prediction"], s)
  candidates = sample_actions(rng_key, policy_params, num_samples)
  return mctx.RootFnOutput(prior_logits=jnp.zeros(candidates.shape[:2]),
                           value=logits_to_scalar(value_logits, support_size),
                           embedding=(s, candidates))


def make_recurrent_fn(nets: search.Networks, *, num_samples: int, support_size: int,
                      discount: float) -> Callable:
  """mctx's `recurrent_fn(params, rng_key, slot[B], (s, candidates))`.

  Steps the dynamics with the chosen slot's action and samples the next
  node's K actions from the policy at the new state with `rng_key`.
  """

  def recurrent_fn(params, rng_key, slot, embedding):
    s, candidates = embedding
    u = jnp.take_along_axis(candidates, slot[:, None, None], axis=1)[:, 0]
    reward_logits, next_s = nets.dynamic(params["dynamic"], s, u)
    value_logits, policy_params = nets.prediction(params["prediction"], next_s)
    next_candidates = sample_actions(rng_key, policy_params, num_samples)
    reward = logits_to_scalar(reward_logits, support_size)
    output = mctx.RecurrentFnOutput(
        reward=reward, discount=jnp.full_like(reward, discount),
        prior_logits=jnp.zeros(next_candidates.shape[:2]),
        value=logits_to_scalar(value_logits, support_size))
    return output, (next_s, next_candidates)

  return recurrent_fn


def qtransform_completed_by_parent(tree: mctx.Tree, node_index: jax.Array, *,
                                   epsilon: float = 1e-8) -> jax.Array:
  """Q-values in [0, 1], unvisited children completed by the parent's value.

  mctx's default for `muzero_policy` completes unvisited children with the
  lowest sibling value. Over K samples with a uniform prior that makes pUCT
  keep the first child better than the parent's value and never try the
  others; completing by the parent's value (as EfficientZero does) keeps the
  untried samples as good as the node's own estimate, so the search compares
  them. Called by mctx per node (unbatched tree, scalar `node_index`).
  """
  qvalues = tree.qvalues(node_index)
  visits = tree.children_visits[node_index]
  parent = tree.node_values[node_index]
  completed = jnp.where(visits > 0, qvalues, parent)
  low = jnp.minimum(parent, jnp.min(completed, axis=-1))
  high = jnp.maximum(parent, jnp.max(completed, axis=-1))
  return (completed - low) / jnp.maximum(high - low, epsilon)


def plan(nets: search.Networks, params: Any, rng_key: jax.Array, obs: jax.Array,
         temperature: jax.typing.ArrayLike, dirichlet_fraction: jax.typing.ArrayLike,
         dirichlet_alpha: jax.typing.ArrayLike, pb_c_init: jax.typing.ArrayLike,
         pb_c_base: jax.typing.ArrayLike, gumbel_scale: jax.typing.ArrayLike, *,
         num_samples: int, search_policy: str, support_size: int, discount: float,
         num_simulations: int, max_depth: Optional[int] = None,
         loop_fn: Callable = jax.lax.fori_loop, qtransform: Optional[Callable] = None,
         max_num_considered_actions: int = 16
         ) -> Tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Searches over K sampled actions per node and picks one at each root.

  `temperature == 0` is greedy and deterministic: fixed keys for sampling
  the candidates and for mctx, no exploration noise, and the most visited
  slot (muzero) or the search's choice (gumbel). With 'muzero', T > 0
  samples a slot from visit counts `N^(1/T)`; with 'gumbel', any T > 0 only
  switches the Gumbel noise on (as in `muax.search.plan`).

  Args:
    nets: the Haiku apply functions.
    params: `{'representation', 'prediction', 'dynamic'}` parameters.
    rng_key: a PRNG key (ignored when `temperature == 0`).
    obs: `[B, ...]` observations.
    temperature, dirichlet_fraction, dirichlet_alpha, pb_c_init, pb_c_base,
      gumbel_scale: traced scalars, as in `MuZero.act`.
    num_samples: K, actions sampled per node.
    search_policy: 'gumbel' or 'muzero'.
    qtransform: None means `qtransform_completed_by_parent` (muzero) or
      mctx's default (gumbel).

  Returns:
    `(slot[B], candidates u[B, K, D], pi[B, K], value[B])`.
  """
  config = SearchConfig.of(temperature, dirichlet_fraction, dirichlet_alpha, pb_c_init,
                          pb_c_base, gumbel_scale)
  budget = SearchBudget(num_simulations, max_depth, max_num_considered_actions, loop_fn,
                        qtransform)
  recurrent_fn = make_recurrent_fn(nets, num_samples=num_samples,
                                   support_size=support_size, discount=discount)
  out = core_search.run(
      search_policy, params, rng_key,
      lambda k_root: root_fn(nets, params, k_root, obs, num_samples=num_samples,
                             support_size=support_size),
      recurrent_fn, None, config, budget,
      default_qtransform=qtransform_completed_by_parent if search_policy == "muzero" else None)
  return out.action, out.root.embedding[1], out.pi, out.value


# -- loss ---------------------------------------------------------------------

def sampled_loss(nets: search.Networks, params: Any, batch: Transition, *, support_size: int,
                 low: jax.typing.ArrayLike, high: jax.typing.ArrayLike,
                 value_weight: float = 1., reward_weight: float = 1.,
                 policy_weight: float = 1., entropy_weight: float = 1e-2
                 ) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Mean Sampled MuZero loss over a batch of windows.

  As `muax.loss.muzero_loss` (value and reward cross-entropies, dynamics
  unrolled along the actions taken, its gradient halved per step), with the
  sample-based policy loss `-sum_k pi[k] log pi_theta(candidates_k | s)` and
  an entropy bonus `-entropy_weight * H(pi_theta)` (the Gaussian's entropy
  before `tanh`).

  Args:
    nets: the Haiku apply functions.
    params: `{'representation', 'prediction', 'dynamic'}` parameters.
    batch: a Transition: `obs[B, K, ...]`, `a[B, K, D]` and
      `candidates[B, K, N, D]` in the Box's units, `r`, `Rn` `[B, K]`,
      `pi[B, K, N]` over the N candidates.
    support_size: S of the categorical support.
    low, high: the Box's bounds `[D]`.

  Returns:
    `(loss, metrics)`: a scalar and a dict of scalar diagnostics.
  """
  s = nets.representation(params["representation"], batch.obs[:, 0])
  u = from_env(jnp.asarray(batch.a, jnp.float32), low, high)  # [B, K, D]

  def unroll(s, u_t):
    value_logits, policy_params = nets.prediction(params["prediction"], s)
    reward_logits, next_s = nets.dynamic(params["dynamic"], s, u_t)
    return scale_gradient(next_s, 0.5), (value_logits, policy_params, reward_logits)

  _, outs = jax.lax.scan(unroll, s, jnp.swapaxes(u, 0, 1))
  value_logits, policy_params, reward_logits = (jnp.swapaxes(x, 0, 1) for x in outs)
  value_loss = categorical_loss(value_logits, batch.Rn, support_size)
  reward_loss = categorical_loss(reward_logits, batch.r, support_size)
  candidates = from_env(jnp.asarray(batch.candidates, jnp.float32), low, high)
  b, k = candidates.shape[:2]
  logp = log_prob(policy_params.reshape(b * k, -1),
                  candidates.reshape((b * k,) + candidates.shape[2:])).reshape(b, k, -1)
  target = jax.lax.stop_gradient(jnp.asarray(batch.pi, jnp.float32))
  policy_loss = -jnp.sum(target * logp, axis=-1)  # [B, K]
  _, log_std = _split(policy_params)
  entropy = jnp.sum(log_std + 0.5 * np.log(2. * np.pi * np.e), axis=-1)  # [B, K]
  loss = weighted_mean(value_weight * value_loss + reward_weight * reward_loss
                       + policy_weight * policy_loss - entropy_weight * entropy, batch)
  metrics = {
      "value_loss": jnp.mean(value_loss),
      "reward_loss": jnp.mean(reward_loss),
      "policy_loss": jnp.mean(policy_loss),
      "policy_entropy": jnp.mean(entropy),
      "value": jnp.mean(logits_to_scalar(value_logits[:, 0], support_size)),
      "n_step_return": jnp.mean(jnp.asarray(batch.Rn, jnp.float32)[:, 0]),
      "priority": value_error(logits_to_scalar(value_logits[:, 0], support_size), batch),
  }
  return loss, metrics


def default_loss_fn(model: Any, params: Any,
                    batch: Transition) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """`sampled_loss` with the model's support, bounds and entropy weight."""
  return sampled_loss(model.networks, params, batch, support_size=model.support_size,
                      low=model.action_low, high=model.action_high,
                      entropy_weight=model.entropy_weight)


# -- the variant --------------------------------------------------------------

def make_variant(model: Any) -> Variant:
  """The `Variant` of a `muax.SampledMuZero`: K candidates per node, Box
  actions in and out, `sampled_loss`, no masks, checkpoints that record K and
  the bounds."""
  nets, support, discount = model.networks, model.support_size, model.search_discount
  k, dim, box = model.num_samples, model.action_dim, model.action_space
  low, high, search_policy = model.action_low, model.action_high, model.search_policy
  transforms = (model.repr_func, model.pred_func, model.dy_func)
  no_mask = muzero.make_mask()

  def init(rng_key, sample):
    """Pure: initial params for `sample[B, ...]`, checked, and K."""
    repr_func, pred_func, dy_func = transforms
    k_repr, k_pred, k_dyn = jax.random.split(rng_key, 3)
    batch = sample.shape[0]
    repr_params = repr_func.init(k_repr, sample)
    s = repr_func.apply(repr_params, sample)
    pred_params = pred_func.init(k_pred, s)
    u = jnp.zeros((batch, dim), jnp.float32)
    dyn_params = dy_func.init(k_dyn, s, u)
    size = 2 * support + 1
    v, policy_params = pred_func.apply(pred_params, s)
    r, next_s = dy_func.apply(dyn_params, s, u)
    for what, got, want in (("prediction_fn value logits", v.shape, (batch, size)),
                            ("prediction_fn policy params", policy_params.shape,
                             (batch, 2 * dim)),
                            ("dynamic_fn reward logits", r.shape, (batch, size)),
                            ("dynamic_fn next state", next_s.shape, s.shape)):
      if got != want:
        raise ValueError(
            f"{what} have shape {got}; expected {want} (support_size="
            f"{support}, action dimension D={dim}: policy params are "
            "[B, 2D] = mean and log_std, the next state has the representation's shape)")
    params = {"representation": repr_params, "prediction": pred_params,
              "dynamic": dyn_params}
    return params, k

  def act(params, rng_key, obs, invalid_actions, config, budget):
    """Traced: `(action[B, D], pi[B, K], value[B], {'candidates': [B, K, D]})`,
    actions in the Box's units."""
    del invalid_actions  # continuous actions have no masks
    slot, candidates, pi, value = plan(
        nets, params, rng_key, obs, config.temperature, config.dirichlet_fraction,
        config.dirichlet_alpha, config.pb_c_init, config.pb_c_base, config.gumbel_scale,
        num_samples=k, search_policy=search_policy, support_size=support,
        discount=discount, num_simulations=budget.num_simulations,
        max_depth=budget.max_depth, loop_fn=budget.loop_fn, qtransform=budget.qtransform,
        max_num_considered_actions=budget.max_num_considered_actions)
    u = jnp.take_along_axis(candidates, slot[:, None, None], axis=1)[:, 0]
    return (to_env(u, low, high), pi, value,
            {"candidates": to_env(candidates, low, high)})

  def plan_packed(params, rng_key, obs, invalid_actions, config, budget):
    """Traced: `[B, 1 + K + D + K*D]` = value, pi, action, candidates (Box units)."""
    action, pi, value, extras = act(params, rng_key, obs, invalid_actions, config, budget)
    return jnp.concatenate([value[:, None], pi, action,
                            extras["candidates"].reshape(obs.shape[0], -1)],
                           axis=-1).astype(jnp.float32)

  def unpack(packed):
    """`(action[B, D], value[B], pi[B, K], {'candidates': [B, K, D]})`, actions in
    the Box's units and bounds."""
    value, pi = packed[:, 0], packed[:, 1:1 + k]
    action = np.clip(packed[:, 1 + k:1 + k + dim], low, high)
    candidates = np.clip(packed[:, 1 + k + dim:].reshape(-1, k, dim), low, high)
    return action, value, pi, {"candidates": candidates}

  def mask(invalid_actions, batch, num_actions):
    if invalid_actions is not None:
      raise ValueError("invalid_actions has no meaning for continuous actions: "
                       "SampledMuZero searches actions sampled from its policy")
    return no_mask(None, batch, num_actions)

  def field_shapes(lead_shape):
    return ({"a": (lead_shape + (dim,), "D"), "r": (lead_shape, ""), "Rn": (lead_shape, ""),
             "pi": (lead_shape + (k,), "num_samples"),
             "candidates": (lead_shape + (k, dim), "num_samples, D")},
            f"num_samples={k}, D={dim}")

  def check_batch(batch, *, what, lead, obs_shape, num_actions, bootstrap):
    if isinstance(batch, Transition) and batch.candidates is None:
      raise ValueError(f"batch.candidates is None; {what} of a Sampled MuZero model needs "
                       "the sampled actions searched at each step, [..., num_samples, D]")
    check_batch_shapes(batch, what=what, lead=lead, obs_shape=obs_shape,
                       num_actions=num_actions, field_shapes=field_shapes,
                       bootstrap=bootstrap)
    # Host check that actions and candidates lie in the action space.
    for name in ("a", "candidates"):
      x = getattr(batch, name)
      if isinstance(x, np.ndarray) and x.size and np.isfinite(x).all():
        slack = 1e-5 * (high - low)
        if (x < low - slack).any() or (x > high + slack).any():
          raise ValueError(f"batch.{name} holds actions outside the action space {box}")

  def batch_is_sane(batch, num_actions):
    # Float actions are not indices: no range check (the host check covers
    # the bounds), only finiteness.
    del num_actions
    return muzero.batch_is_sane(batch, None)

  def check_action_space(space, num_actions, what="action_space"):
    """Raises ValueError unless `space` is this model's Box (shape and bounds)."""
    del num_actions
    if not isinstance(space, gym.spaces.Box) or space.shape != box.shape \
        or not np.array_equal(np.asarray(space.low, np.float32), low) \
        or not np.array_equal(np.asarray(space.high, np.float32), high):
      raise ValueError(f"{what} is {space}, but this Sampled MuZero model was built for "
                       f"{box}")

  def check_checkpoint(meta, file):
    """K and the action space of the checkpoint must be this model's."""
    saved = (meta.get("policy"), meta.get("num_samples"), meta.get("action_low"),
             meta.get("action_high"))
    mine = ("sampled", k, low.tolist(), high.tolist())
    if saved != mine:
      raise checkpoint.CheckpointError(
          f"checkpoint {file} has (policy, num_samples, action low, action high) = "
          f"{saved}; this model has {mine}")

  return Variant(init=init, plan=plan_packed, unpack=unpack, loss=default_loss_fn,
                 check_batch=check_batch, batch_is_sane=batch_is_sane, mask=mask,
                 check_action_space=check_action_space,
                 metadata={"num_samples": k, "action_low": low.tolist(),
                           "action_high": high.tolist(), "search_policy": search_policy},
                 check_checkpoint=check_checkpoint, act=act,
                 model_action=lambda a: from_env(a, low, high))
