"""The `Transition` record exchanged by tracers, trajectories, replay and loss."""
import dataclasses
from typing import Any, Callable, Sequence, Tuple

import jax
import numpy as np

FIELDS = ("obs", "a", "r", "done", "Rn", "v", "pi", "w")
# Optional fields after the classic eight: None when absent. Iterating a
# Transition still yields the eight, so `obs, a, r, done, Rn, v, pi, w = t`
# keeps working; pytree functions (`jax.tree_util.tree_map`) see all fields.
EXTRA_FIELDS = ("mask", "candidates")
# Fields a replay buffer adds to a sampled batch (never stored in replay):
# loss weights, and what reanalysis needs to refresh the value targets.
SAMPLE_FIELDS = ("weight", "next_obs", "next_v", "next_discount", "inside")
ALL_FIELDS = FIELDS + EXTRA_FIELDS + SAMPLE_FIELDS


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass
class Transition:
  """One environment step with its learning targets.

  Fields are scalars for a single step, `[1, T, ...]` in a finalized
  `Trajectory` and `[B, K, ...]` in a replay batch.
  """
  obs: Any = 0.   # observation the action was taken in, `[..., *obs_shape]`
  a: Any = 0      # action, `[...]`
  r: Any = 0.     # reward received for `a`, `[...]`
  done: Any = False  # True: `Rn` is not bootstrapped (the episode ended)
  Rn: Any = 0.    # n-step discounted return target, `[...]`
  v: Any = 0.     # search value of `obs` when it was played, `[...]`
  pi: Any = 0.    # search policy at `obs`, `[..., num_actions]`
  w: Any = 1.     # priority, `[...]`
  mask: Any = None  # legal actions (1 = legal) at `obs`, `[..., num_actions]`
  candidates: Any = None  # sampled actions searched at `obs`, `[..., K, action_dim]`
  # Added to sampled batches only (`[B, K, ...]`):
  weight: Any = None  # loss weight of each step (importance-sampling weight)
  next_obs: Any = None  # observation `Rn` bootstraps from, `[..., *obs_shape]`
  next_v: Any = None  # the value `Rn` was bootstrapped with
  next_discount: Any = None  # its discount `g^n` in `Rn`; 0 when not in replay
  inside: Any = None  # True for real steps, False past the end of an episode

  def __iter__(self):
    return iter(getattr(self, name) for name in FIELDS)

  def __getitem__(self, index):
    """Indexes every field alike: `batch[:, 2:5]` slices the time axis."""
    return jax.tree_util.tree_map(lambda x: x[index], self)

  def replace(self, **changes: Any) -> "Transition":
    return dataclasses.replace(self, **changes)

  def fields(self) -> dict:
    """The fields that are present, by name: the classic eight and any
    optional field that is not None."""
    return {name: getattr(self, name) for name in ALL_FIELDS
            if name in FIELDS or getattr(self, name) is not None}

  def tree_flatten(self) -> Tuple[Tuple[Any, ...], None]:
    return tuple(getattr(self, name) for name in ALL_FIELDS), None

  @classmethod
  def tree_unflatten(cls, aux: Any, children: Sequence[Any]) -> "Transition":
    del aux
    return cls(*children)


def check_batch_shapes(batch: Transition, *, what: str, lead: int, obs_shape: tuple,
                       num_actions: int, field_shapes: Callable[[tuple], tuple],
                       bootstrap: bool = False) -> None:
  """Raises unless `batch` is a Transition whose shapes fit a model (host only,
  no device sync).

  Args:
    what: the calling method, for messages ('update', 'update_many').
    lead: the number of leading axes (2: `[B, K]`, 3: `[U, B, K]`).
    obs_shape: one observation's shape.
    num_actions: the width `batch.mask` must have.
    field_shapes: `lead_shape -> ({name: (shape, trailing axes' names)}, note)`:
      the shapes the variant requires of its action and target fields for a
      batch with these leading axes, and a note naming their sizes.
    bootstrap: the bootstrap fields reanalysis needs must be present.

  Raises:
    TypeError: not a Transition.
    ValueError: a field of the wrong shape, naming it and the shape expected.
  """
  if not isinstance(batch, Transition):
    raise TypeError(f"{what} expects a muax.Transition batch, got {type(batch).__name__}")
  dims = "U, B, K" if lead == 3 else "B, K"
  got_obs = np.shape(batch.obs)
  if len(got_obs) < lead or tuple(got_obs[lead:]) != tuple(obs_shape):
    raise ValueError(f"batch.obs has shape {got_obs}; {what} expects [{dims}, "
                     f"{', '.join(map(str, obs_shape))}]")
  lead_shape = tuple(got_obs[:lead])
  fields, note = field_shapes(lead_shape)
  for name, (shape, tail) in fields.items():
    got = np.shape(getattr(batch, name))
    if got != shape:
      raise ValueError(f"batch.{name} has shape {got}; {what} expects [{dims}"
                       f"{', ' + tail if tail else ''}] = {shape} to match batch.obs "
                       f"{got_obs} ({note})")
  if batch.mask is not None and np.shape(batch.mask) != lead_shape + (num_actions,):
    raise ValueError(f"batch.mask has shape {np.shape(batch.mask)}; {what} expects "
                     f"[{dims}, num_actions] = {lead_shape + (num_actions,)}")
  for name in ("done", "v", "w"):  # unused by the default loss: scalars allowed
    got = np.shape(getattr(batch, name))
    if got not in ((), lead_shape):
      raise ValueError(f"batch.{name} has shape {got}; {what} expects [{dims}] = "
                       f"{lead_shape}")
  for name in ("weight", "next_v", "next_discount", "inside", "next_obs"):
    value = getattr(batch, name)
    shape = lead_shape + (tuple(got_obs[lead:]) if name == "next_obs" else ())
    if value is not None and np.shape(value) != shape:
      raise ValueError(f"batch.{name} has shape {np.shape(value)}; {what} expects "
                       f"{shape} to match batch.obs {got_obs}")
  if bootstrap and any(getattr(batch, name) is None
                       for name in ("next_obs", "next_v", "next_discount", "inside")):
    raise ValueError("reanalyze is on, but the batch lacks the bootstrap fields: "
                     "sample it with buffer.sample(..., bootstrap=(n, discount)) "
                     "(the tracer's n and discount), or model.set_reanalyze(None)")
