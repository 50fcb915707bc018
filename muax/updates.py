"""A model's updates as pure functions of a `TrainState`
(`MuZero.update_functions`): its loss, optimizer, priorities and reanalysis
put together by `muax.core.learner`."""
import functools
from typing import Any, Callable, Optional, Tuple

from muax import reanalyze as reanalyze_lib
from muax.core import learner
from muax.loss import value_error
from muax.support import logits_to_scalar

__all__ = ["update_functions"]


def update_functions(model: Any, *, loss_fn: Optional[Callable]) -> Tuple[Callable, Callable]:
  """`(update, update_many)` for `model` (see `MuZero.update_functions`).

  `loss_fn(model, params, batch)` is the user's loss, or None for the
  variant's own; either may return a scalar or `(scalar, metrics)`.
  """
  variant, nets, support = model.variant, model.networks, model.support_size
  loss_fn = variant.loss if loss_fn is None else loss_fn

  def loss(params, batch):
    out = loss_fn(model, params, batch)
    return out if isinstance(out, tuple) else (out, {})

  def window_error(params, batch):
    """Each window's value error `[B]` (a custom loss's priorities)."""
    s = nets.representation(params["representation"], batch.obs[:, 0])
    value_logits = nets.prediction(params["prediction"], s)[0]
    return value_error(logits_to_scalar(value_logits, support), batch)

  step = learner.make_gradient_step(
      loss, model.optimizer, priority=window_error,
      batch_is_sane=functools.partial(variant.batch_is_sane, num_actions=model.num_actions))
  config = model.reanalyze
  update = learner.make_update(
      step, reanalysis=None if config is None else functools.partial(
          reanalyze_lib.reanalyze_batch, model, config=config),
      target_update_interval=1 if config is None else config.target_update_interval)
  return update, learner.make_update_many(update)
