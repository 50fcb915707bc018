"""MuZero and Gumbel MuZero as a `Variant` (and the defaults other variants reuse).

`make(model)` builds the variant of `policy='muzero'` (`mctx.muzero_policy`)
or `'gumbel'` (`mctx.gumbel_muzero_policy`) from a model's networks and
settings. Its keywords are the seams other algorithms use: `qtransform` (a
search with another Q normalisation), `root` and `recurrent_fn` (a search
whose nodes carry more than the hidden state, as the value prefix's do),
`init_extra` (more parameters) and `loss`.

The host checks here (`check_batch`, `mask`, `check_action_space`) and the
packing of a decision (`pack_plan` / `unpack_plan`) are the discrete-action
defaults; Stochastic MuZero reuses them, Sampled MuZero replaces them.
"""
import dataclasses
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from muax import checks
from muax import search as search_lib
from muax.core.variant import Variant
from muax.loss import default_loss_fn
from muax.transition import check_batch_shapes

__all__ = ["batch_is_sane", "check_batch", "check_discrete_space", "make", "make_mask",
           "pack_plan", "require_discrete", "unpack_plan"]


def make(model: Any, *, search_policy: Optional[str] = None, qtransform: Optional[Callable] = None,
         root: Optional[Callable] = None, recurrent_fn: Optional[Callable] = None,
         init_extra: Optional[Callable] = None, loss: Callable = default_loss_fn,
         metadata: Optional[Mapping[str, Any]] = None) -> Variant:
  """The MuZero variant of `model` (its networks, support, discount and policy).

  Args:
    model: a `muax.MuZero` under construction; only its public settings are
      read, once.
    search_policy: the mctx policy, 'muzero' or 'gumbel'; None: `model.policy`.
    qtransform: the search's Q transform when `act` gives none (None: mctx's).
    root: traced `(params, obs[B, ...]) -> mctx.RootFnOutput` replacing the
      plain root (representation and prediction).
    recurrent_fn: mctx's `recurrent_fn` replacing the plain one.
    init_extra: pure `(key, params, sample) -> params` adding parameters.
    loss: the default `loss_fn(model, params, batch)`.
    metadata: what checkpoints record besides the common settings.
  """
  nets, support = model.networks, model.support_size
  policy = model.policy if search_policy is None else search_policy
  recurrent = recurrent_fn or search_lib.make_recurrent_fn(
      nets, support_size=support, discount=model.search_discount)
  init_plain = make_init(model)

  def init(rng_key, sample):
    if init_extra is None:
      return init_plain(rng_key, sample)
    key, k_extra = jax.random.split(rng_key)
    params, num_actions = init_plain(key, sample)
    return init_extra(k_extra, params, sample), num_actions

  def search(params, rng_key, obs, invalid_actions, config, budget):
    if qtransform is not None and budget.qtransform is None:
      budget = dataclasses.replace(budget, qtransform=qtransform)
    return search_lib.search(nets, params, rng_key, obs, invalid_actions, config, budget,
                             policy=policy, support_size=support, discount=None,
                             root=None if root is None else root(params, obs),
                             recurrent_fn=recurrent)

  def plan(params, rng_key, obs, invalid_actions, config, budget):
    return pack_plan(*search(params, rng_key, obs, invalid_actions, config, budget))

  return Variant(init=init, plan=plan, unpack=unpack, loss=loss, check_batch=check_batch,
                 batch_is_sane=batch_is_sane, mask=make_mask(),
                 check_action_space=check_discrete_space, search=search,
                 metadata=dict(metadata or {}))


def make_init(model: Any) -> Callable:
  """`init(key, sample) -> (params, num_actions)` of the three plain networks,
  checking their shapes against `model.support_size`."""
  repr_func, pred_func, dy_func = model.repr_func, model.pred_func, model.dy_func
  support = model.support_size

  def init(rng_key, sample):
    k_repr, k_pred, k_dyn = jax.random.split(rng_key, 3)
    batch, size = sample.shape[0], 2 * support + 1
    repr_params = repr_func.init(k_repr, sample)
    s = repr_func.apply(repr_params, sample)
    pred_params = pred_func.init(k_pred, s)
    a = jnp.zeros((batch,), jnp.int32)
    dyn_params = dy_func.init(k_dyn, s, a)
    v, logits = pred_func.apply(pred_params, s)
    if v.shape != (batch, size):
      raise ValueError(
          f"prediction_fn returned value logits of shape {v.shape}; expected "
          f"[B, 2*support_size+1] = {(batch, size)} (support_size={support})")
    if logits.ndim != 2 or logits.shape[0] != batch or logits.shape[1] < 1:
      raise ValueError(f"prediction_fn returned policy logits of shape {logits.shape}; "
                       f"expected [B, num_actions] with B={batch}")
    r, next_s = dy_func.apply(dyn_params, s, a)
    if r.shape != (batch, size):
      raise ValueError(
          f"dynamic_fn returned reward logits of shape {r.shape}; expected "
          f"[B, 2*support_size+1] = {(batch, size)} (support_size={support})")
    if next_s.shape != s.shape:
      raise ValueError(f"dynamic_fn returned a next state of shape {next_s.shape}; it "
                       f"must match the representation's state shape {s.shape}")
    params = {"representation": repr_params, "prediction": pred_params,
              "dynamic": dyn_params}
    return params, int(logits.shape[1])

  return init


def pack_plan(action: jax.Array, pi: jax.Array, value: jax.Array) -> jax.Array:
  """`[B, 2 + A]` float32: action (exact below 2**24), value, then pi."""
  return jnp.concatenate([action[:, None].astype(jnp.float32),
                          value[:, None].astype(jnp.float32), pi.astype(jnp.float32)], -1)


def unpack_plan(packed: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`(action[B] int32, value[B], pi[B, A])` from a packed plan on the host."""
  return packed[:, 0].astype(np.int32), packed[:, 1], packed[:, 2:]


def unpack(packed: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
  """`(action[B], value[B], pi[B, A], {})`: a discrete variant has no extras."""
  action, value, pi = unpack_plan(packed)
  return action, value, pi, {}


def field_shapes(num_actions: int) -> Callable[[tuple], tuple]:
  """`lead_shape -> ({field: (shape, trailing axes' names)}, note)`: what a
  discrete variant's batch holds besides the observations."""

  def shapes(lead_shape):
    return ({"a": (lead_shape, ""), "r": (lead_shape, ""), "Rn": (lead_shape, ""),
             "pi": (lead_shape + (num_actions,), "num_actions")},
            f"num_actions={num_actions}")

  return shapes


def check_batch(batch: Any, *, what: str, lead: int, obs_shape: tuple, num_actions: int,
                bootstrap: bool) -> None:
  """Shapes (no device sync) and, on host arrays, actions in `[0, num_actions)`
  (device arrays are checked on the device, where a bad batch is a skipped step)."""
  check_batch_shapes(batch, what=what, lead=lead, obs_shape=obs_shape,
                     num_actions=num_actions, field_shapes=field_shapes(num_actions),
                     bootstrap=bootstrap)
  if isinstance(batch.a, np.ndarray):
    checks.actions_in_range(batch.a, num_actions, what)


def batch_is_sane(batch: Any, num_actions: Optional[int]) -> jax.Array:
  """Traced: every float field finite and every action in `[0, num_actions)`
  (no range check when `num_actions` is None: float action vectors)."""
  ok = jnp.array(True)
  for x in jax.tree_util.tree_leaves(batch):
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
      ok &= jnp.isfinite(x).all()
  if num_actions is None:
    return ok
  a = jnp.asarray(batch.a)
  return ok & jnp.all((a >= 0) & (a < num_actions))


def make_mask() -> Callable:
  """`mask(invalid_actions, batch, num_actions) -> [B, A]` float32 (1 = invalid),
  checked; None gives zeros (one array per batch size, reused)."""
  no_mask = {}

  def mask(invalid_actions, batch, num_actions):
    if invalid_actions is None:
      if (batch, num_actions) not in no_mask:
        no_mask[batch, num_actions] = np.zeros((batch, num_actions), np.float32)
      return no_mask[batch, num_actions]
    try:
      out = np.asarray(invalid_actions, np.float32)
    except (TypeError, ValueError):
      raise TypeError("invalid_actions must be an array of 0 (valid) and 1 (invalid), got "
                      f"{invalid_actions!r}") from None
    if out.ndim == 1:
      out = out[None]
    if out.shape != (batch, num_actions):
      raise ValueError(f"invalid_actions has shape {np.shape(invalid_actions)}; expected "
                       f"[B, num_actions] = {(batch, num_actions)}")
    # mctx treats any non-zero entry (NaN and -1 included) as invalid: accept
    # only the two values whose meaning is unambiguous.
    if ((out != 0.) & (out != 1.)).any():
      bad = out[(out != 0.) & (out != 1.)][0].item()
      raise ValueError(f"invalid_actions must hold 0 (valid) or 1 (invalid), found {bad!r}")
    if out.all(axis=-1).any():
      rows = np.flatnonzero(out.all(axis=-1)).tolist()
      raise ValueError("invalid_actions marks every action invalid for observation(s) "
                       f"{rows}: at least one action must be valid")
    return out

  return mask


def require_discrete(space: gym.Space, what: str = "action_space") -> None:
  """Raises ValueError unless `space` is a gymnasium Discrete space."""
  if not isinstance(space, gym.spaces.Discrete):
    raise ValueError(f"muax plans over discrete actions, but {what} is {space}; wrap "
                     "the environment to discretise it, or use policy='sampled'")


def check_discrete_space(space: gym.Space, num_actions: Optional[int],
                         what: str = "action_space") -> None:
  """Raises ValueError unless `space` is Discrete (of `num_actions` actions, once known)."""
  require_discrete(space, what)
  if num_actions is not None and int(space.n) != num_actions:
    raise ValueError(f"{what} has {int(space.n)} actions, but the model's networks "
                     f"have {num_actions}")
