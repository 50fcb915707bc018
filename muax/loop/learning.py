"""`Learner`: the one owner of a `TrainState`, learning from batches of windows.

It holds no model: it is given a pure `update_many(state, batches)` (for a
`MuZero`, `model.update_functions()[1]`) and a state, jits the update once
with the state donated (its old buffers are reused, never copied), and hands
back device arrays without waiting for them. Actors read `learner.params`
between calls; a Ray learner process or a compiled loop can hold one the same
way.
"""
from typing import Any, Callable

import jax
import numpy as np

from muax.core.types import LearnerOutput
from muax.core.types import TrainState

__all__ = ["Learner", "PRIORITY", "mean_metrics", "metrics_dict"]


class Learner:
  """Owns a `TrainState` and updates it.

  Args:
    update_many: `(state, batches[U, ...]) -> (state, LearnerOutput)`, pure.
    state: the initial state. With `donate`, the learner takes it over: its
      arrays are copied once here, so the caller's copy stays valid.
    donate: let each call reuse the previous state's device buffers. Arrays
      read from `params` or `state` before a `learn` call are then deleted by
      it: copy them (`jax.tree_util.tree_map(jnp.copy, ...)`) to keep them.
  """

  def __init__(self, update_many: Callable, state: TrainState, *, donate: bool = True):
    if not isinstance(state, TrainState):
      raise TypeError(f"state must be a muax.core.TrainState, got {type(state).__name__}")
    self._donate = bool(donate)
    self._state = jax.tree_util.tree_map(lambda x: x.copy(), state) if donate else state
    self._learn = jax.jit(update_many, donate_argnums=(0,) if donate else ())
    self.updates = 0

  @property
  def state(self) -> TrainState:
    return self._state

  @property
  def params(self) -> Any:
    return self._state.params

  def learn(self, batches: Any) -> LearnerOutput:
    """`U` updates on `batches[U, B, K, ...]`; the outputs (`[U]` metrics,
    `[U, B]` priorities) stay on the device until read."""
    self._state, out = self._learn(self._state, batches)
    self.updates += int(jax.tree_util.tree_leaves(batches)[0].shape[0])
    return out


PRIORITY = "priority"  # the per-window value errors among an update's metrics


def metrics_dict(out: LearnerOutput) -> dict:
  """The metrics dict `update` has always returned, from a `LearnerOutput`."""
  return dict(out.metrics, skipped=out.skipped, **{PRIORITY: out.priority})


def mean_metrics(metrics: dict) -> dict:
  """Host floats from per-update metrics `[U]`: means, and `'skipped'` summed
  (the per-window priorities are left out)."""
  metrics = jax.device_get(metrics)
  out = {k: float(np.mean(v)) for k, v in metrics.items() if k != PRIORITY}
  if "skipped" in metrics:
    out["skipped"] = float(np.sum(metrics["skipped"]))
  return out
