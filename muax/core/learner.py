"""Pure updates of a `TrainState`: gradient steps, the target network, scans.

`make_update` turns a gradient step into `update(state, batch) -> (state,
LearnerOutput)`; `make_update_many` scans it over stacked batches `[U, ...]`.
Both are pure: the caller jits them (the façade, the runners) and may donate
the state. Reanalysis (`muax.reanalyze`) plugs in as a function that refreshes
a batch's targets with the target network; the target network is refreshed
from the parameters every `target_update_interval` updates, counted by
`state.count`, so a saved `TrainState` resumes the schedule exactly.
"""
import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from muax.core.types import LearnerOutput
from muax.core.types import TrainState

__all__ = ["init_state", "make_gradient_step", "make_update", "make_update_many"]

# (params, opt_state, batch) -> (params, opt_state, metrics, priority[B], skipped[])
GradientStep = Callable
# (params, target_params, key, batch) -> (batch with fresh targets, metrics)
Reanalysis = Callable


def init_state(params: Any, opt_state: Any, *, key: Any,
               with_target: bool = False) -> TrainState:
  """A `TrainState` at update 0; the target network starts as `params`."""
  return TrainState(params=params, opt_state=opt_state,
                    target_params=params if with_target else None,
                    count=jnp.zeros((), jnp.int32), key=jnp.asarray(key, jnp.uint32))


def make_gradient_step(loss: Callable, optimizer: optax.GradientTransformation, *,
                       priority: Callable, batch_is_sane: Callable) -> GradientStep:
  """One guarded gradient step.

  Args:
    loss: `(params, batch) -> (scalar, metrics)`; metrics may hold
      `'priority'` `[B]`, else `priority(params, batch)` computes it.
    optimizer: the optax transformation.
    priority: `(params, batch) -> [B]` each window's value error.
    batch_is_sane: `batch -> [] bool`; a batch that is not (NaN, an action
      out of range) is a skipped step.

  Returns:
    `step(params, opt_state, batch)`: the new params and optimizer state (the
    old ones when the loss, the gradient or the batch is not finite), the
    metrics (`loss`, `grad_norm` and the loss's own), priority and skipped.
  """

  def step(params, opt_state, batch):
    (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params, batch)
    metrics = dict(metrics)
    window_error = metrics.pop("priority", None)
    if window_error is None:
      window_error = priority(params, batch)
    updates, new_opt_state = optimizer.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    grad_norm = _global_norm(grads)
    # A non-finite target can still give a finite loss (the two-hot encoding
    # clips an infinite return to the edge of the support): check the data too.
    finite = jnp.isfinite(value) & jnp.isfinite(grad_norm) & batch_is_sane(batch)
    keep = functools.partial(jax.tree_util.tree_map,
                             lambda new, old: jnp.where(finite, new, old))
    metrics.update(loss=value, grad_norm=grad_norm)
    return (keep(new_params, params), keep(new_opt_state, opt_state), metrics,
            window_error, 1. - finite.astype(jnp.float32))

  return step


def make_update(step: GradientStep, *, reanalysis: Optional[Reanalysis] = None,
                target_update_interval: int = 1) -> Callable:
  """`update(state, batch) -> (state, LearnerOutput)`: one step, counted.

  With `reanalysis`, the target network is first refreshed from the
  parameters when `state.count % target_update_interval == 0`, then the batch's
  targets are refreshed with it (consuming one split of `state.key`).
  """

  def update(state: TrainState, batch):
    target, key, extra = state.target_params, state.key, {}
    if reanalysis is not None:
      refresh = state.count % target_update_interval == 0
      target = jax.tree_util.tree_map(lambda p, t: jnp.where(refresh, p, t),
                                      state.params, target)
      key, search_key = jax.random.split(key)
      batch, extra = reanalysis(state.params, target, search_key, batch)
    params, opt_state, metrics, priority, skipped = step(state.params, state.opt_state,
                                                          batch)
    new_state = TrainState(params=params, opt_state=opt_state, target_params=target,
                           count=state.count + 1, key=key)
    return new_state, LearnerOutput(metrics=dict(metrics, **extra), priority=priority,
                                    skipped=skipped)

  return update


def make_update_many(update: Callable) -> Callable:
  """`update_many(state, batches[U, ...])`: `update` on each `batches[u]` in
  turn inside one `jax.lax.scan`; the outputs gain a leading `[U]`."""

  def update_many(state: TrainState, batches):
    return jax.lax.scan(update, state, batches)

  return update_many


def _global_norm(tree):
  # optax.tree.norm replaced optax.global_norm (deprecated) in newer optax.
  tree_api = getattr(optax, "tree", None)
  if tree_api is not None and hasattr(tree_api, "norm"):
    return tree_api.norm(tree)
  return optax.global_norm(tree)
