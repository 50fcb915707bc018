"""The MuZero training loss (Schrittwieser et al., 2020, Appendix G).

For a window of K steps starting at observation o_t, the model embeds o_t and
unrolls the dynamics along the actions actually taken:

  s_0 = repr(o_t),   r_k, s_{k+1} = dyn(s_k, a_{t+k}),   v_k, p_k = pred(s_k).

Each step is scored by cross-entropies: value against the two-hot n-step
return `Rn_{t+k}`, reward against the two-hot `r_{t+k}`, policy against the
search policy `pi_{t+k}` (restricted to the legal actions when the batch
carries legal-action masks). The gradient entering each dynamics step is halved
so the total gradient to the dynamics stays constant with K, and the loss is
averaged over the K steps, each step weighted by `batch.weight` when the batch
has one (importance-sampling weights from prioritized replay).

Optional, off by default (`make_loss_fn`): the self-supervised consistency
loss of EfficientZero (Ye et al., 2021), the negative cosine similarity
between the state the dynamics predicts for step k and the (gradient-stopped)
representation of the observation actually seen at step k.
"""
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import optax

from muax import checks
from muax.search import Networks
from muax.support import logits_to_scalar, scalar_to_support


def muzero_loss(nets: Networks, params: Any, batch: Any, *, support_size: int,
                value_weight: float = 1., reward_weight: float = 1.,
                policy_weight: float = 1., consistency_weight: float = 0.,
                value_prefix: Optional[Any] = None) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Mean MuZero loss over a batch of windows.

  Args:
    nets: the Haiku apply functions.
    params: `{'representation', 'prediction', 'dynamic'}` parameters.
    batch: a Transition with fields `[B, K, ...]`.
    support_size: S of the categorical support.
    consistency_weight: weight of the consistency loss (0: off).
    value_prefix: a `muax.value_prefix.PrefixHead`: the reward term then
      scores the prefix LSTM (params `'value_prefix'`) against the sums of
      rewards since its last reset, instead of `dynamic_fn`'s rewards.

  Returns:
    `(loss, metrics)`: a scalar and a dict of diagnostics, scalars except
    `'priority'` `[B]`, each window's value error `|v_0 - Rn_0|` for
    prioritized replay.
  """
  s = nets.representation(params["representation"], batch.obs[:, 0])
  actions = jnp.swapaxes(jnp.asarray(batch.a), 0, 1).astype(jnp.int32)  # [K, B]
  k_steps = actions.shape[0]

  def unroll(carry, xs):
    s, prefix_state = carry
    a, k = xs
    value_logits, policy_logits = nets.prediction(params["prediction"], s)
    reward_logits, next_s = nets.dynamic(params["dynamic"], s, a)
    if value_prefix is not None:  # the LSTM starts afresh every `horizon` steps
      fresh = k % value_prefix.horizon == 0
      prefix_state = tuple(jnp.where(fresh, 0., x) for x in prefix_state)
      reward_logits, prefix_state = value_prefix.apply(params["value_prefix"], next_s,
                                                       prefix_state)
    next_s = scale_gradient(next_s, 0.5)
    return (next_s, prefix_state), (value_logits, policy_logits, reward_logits, next_s)

  prefix_state = () if value_prefix is None else value_prefix.initial_state(s.shape[0])
  _, (value_logits, policy_logits, reward_logits, next_states) = jax.lax.scan(
      unroll, (s, prefix_state), (actions, jnp.arange(k_steps)))
  # Back to batch-major [B, K, ...].
  value_logits, policy_logits, reward_logits = (
      jnp.swapaxes(x, 0, 1) for x in (value_logits, policy_logits, reward_logits))
  reward_targets = batch.r
  if value_prefix is not None:
    reward_targets = prefix_targets(batch.r, value_prefix.horizon)

  value_loss = categorical_loss(value_logits, batch.Rn, support_size)
  reward_loss = categorical_loss(reward_logits, reward_targets, support_size)
  policy_loss = optax.softmax_cross_entropy(policy_logits, policy_target(batch))
  per_step = (value_weight * value_loss + reward_weight * reward_loss
              + policy_weight * policy_loss)  # [B, K]
  value = logits_to_scalar(value_logits[:, 0], support_size)
  metrics = {
      "value_loss": jnp.mean(value_loss),
      "reward_loss": jnp.mean(reward_loss),
      "policy_loss": jnp.mean(policy_loss),
      "value": jnp.mean(value),
      "n_step_return": jnp.mean(jnp.asarray(batch.Rn, jnp.float32)[:, 0]),
      "priority": value_error(value, batch),
  }
  if consistency_weight and batch.obs.shape[1] > 1:
    consistency = consistency_loss(nets, params, batch, next_states)  # [B, K-1]
    per_step = per_step.at[:, 1:].add(consistency_weight * consistency)
    metrics["consistency_loss"] = jnp.mean(consistency)
  return weighted_mean(per_step, batch), metrics


def prefix_targets(r: jax.typing.ArrayLike, horizon: int) -> jax.Array:
  """`[B, K]` value-prefix targets: at step k, the sum of `r` since the last
  reset of the prefix LSTM (steps `horizon * (k // horizon)` to k)."""
  r = jnp.asarray(r, jnp.float32)
  total = jnp.cumsum(r, axis=1)
  start = (jnp.arange(r.shape[1]) // horizon) * horizon  # first step of k's block
  before = jnp.where(start > 0, jnp.take(total, jnp.maximum(start - 1, 0), axis=1), 0.)
  return total - before


def consistency_loss(nets: Networks, params: Any, batch: Any,
                     next_states: jax.Array) -> jax.Array:
  """`[B, K-1]` negative cosine similarity between the dynamics' state for
  step k (`next_states[k-1]`, `[K, B, ...]` from the unroll) and the
  representation of `obs[:, k]`, its gradient stopped (SimSiam-style)."""
  obs = batch.obs[:, 1:]
  b, k1 = obs.shape[:2]
  target = nets.representation(params["representation"],
                               obs.reshape((b * k1,) + obs.shape[2:]))
  target = jax.lax.stop_gradient(target).reshape(b, k1, -1)
  predicted = jnp.swapaxes(next_states[:-1], 0, 1).reshape(b, k1, -1)
  unit = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-8)  # noqa: E731
  return -jnp.sum(unit(predicted) * unit(target), axis=-1)


def weighted_mean(per_step: jax.Array, batch: Any) -> jax.Array:
  """Mean of a `[B, K]` loss, each step weighted by `batch.weight` if given."""
  if batch.weight is None:
    return jnp.mean(per_step)
  return jnp.mean(per_step * jax.lax.stop_gradient(jnp.asarray(batch.weight, jnp.float32)))


def value_error(value: jax.Array, batch: Any) -> jax.Array:
  """`[B]` `|value - Rn_0|`: the priority of each window's first step."""
  return jax.lax.stop_gradient(jnp.abs(value - jnp.asarray(batch.Rn, jnp.float32)[:, 0]))


def policy_target(batch: Any) -> jax.Array:
  """The search policy `pi [B, K, A]`, restricted to the legal actions when the
  batch carries legal-action masks (`batch.mask`, 1 = legal) and renormalised;
  uniform over the legal actions where pi gives them no mass."""
  pi = jnp.asarray(batch.pi, jnp.float32)
  if batch.mask is None:
    return jax.lax.stop_gradient(pi)
  legal = jnp.asarray(batch.mask, jnp.float32)
  masked = pi * legal
  total = jnp.sum(masked, axis=-1, keepdims=True)
  uniform = legal / jnp.maximum(jnp.sum(legal, axis=-1, keepdims=True), 1.)
  return jax.lax.stop_gradient(
      jnp.where(total > 0, masked / jnp.maximum(total, 1e-12), uniform))


def default_loss_fn(model: Any, params: Any,
                    batch: Any) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """The default loss, called as `loss_fn(model, params, batch)`.

  Returns `(loss, metrics)`; `MuZero.update` also accepts custom loss
  functions that return the scalar loss alone. A model with a value-prefix
  head (`muax.value_prefix`) has its reward term scored on the prefixes.
  """
  return muzero_loss(model.networks, params, batch, support_size=model.support_size,
                     value_prefix=getattr(model, "prefix_head", None))


def make_loss_fn(*, value_weight: float = 1., reward_weight: float = 1.,
                 policy_weight: float = 1., consistency_weight: float = 0.) -> Callable:
  """A `loss_fn(model, params, batch)` for `MuZero(loss_fn=...)` with these
  weights; `consistency_weight > 0` turns on the consistency loss
  (EfficientZero used 2)."""
  for name, value in (("value_weight", value_weight), ("reward_weight", reward_weight),
                      ("policy_weight", policy_weight),
                      ("consistency_weight", consistency_weight)):
    checks.number(name, value, low=0., what="a finite number >= 0", not_a_number=ValueError)
  weights = dict(value_weight=float(value_weight), reward_weight=float(reward_weight),
                 policy_weight=float(policy_weight),
                 consistency_weight=float(consistency_weight))

  def loss_fn(model, params, batch):
    return muzero_loss(model.networks, params, batch, support_size=model.support_size,
                       value_prefix=getattr(model, "prefix_head", None), **weights)

  loss_fn.weights = weights
  return loss_fn


def categorical_loss(logits: jax.Array, scalar_targets: jax.typing.ArrayLike,
                     support_size: int) -> jax.Array:
  """`[...]` cross-entropy of `logits[..., 2S+1]` against the two-hot encoding
  of `scalar_targets[...]` (no gradient into the targets)."""
  targets = scalar_to_support(jax.lax.stop_gradient(scalar_targets), support_size)
  return optax.softmax_cross_entropy(logits, targets)


def scale_gradient(x: jax.Array, scale: float) -> jax.Array:
  """Identity forward; multiplies the gradient by `scale` backward."""
  return x * scale + jax.lax.stop_gradient(x) * (1. - scale)
