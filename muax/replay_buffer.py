"""Trajectories and a ring buffer of them, sampled as `[B, K, ...]` windows.

A window of K steps starts at any step of a trajectory. Past the end of a
*terminated* episode the window continues in the absorbing state, as in the
MuZero pseudocode: reward 0, value target 0, uniform policy target, random
action. A trajectory that ended without terminating (time limit, or cut by the
user) has no known future, so its windows must fit inside it.

Sampling is vectorised: the buffer keeps every stored step in flat arrays and
gathers all windows of a batch with one fancy index per field.
"""
import collections
from typing import Optional

import numpy as np

from muax.transition import FIELDS, Transition

__all__ = ["Trajectory", "TrajectoryReplayBuffer", "Transition"]

_DTYPES = {"a": np.int32, "r": np.float32, "done": np.bool_, "Rn": np.float32,
           "v": np.float32, "pi": np.float32, "w": np.float32}


class Trajectory:
  """The transitions of one episode, in order."""

  def __init__(self):
    self._transitions = []
    self._batched = None

  def add(self, transition: Transition):
    """Appends one transition (invalidates an earlier `finalize`)."""
    self._transitions.append(transition)
    self._batched = None

  def finalize(self):
    """Stacks the transitions into `batched_transitions` (`[1, T, ...]`)."""
    if not self._transitions:
      raise ValueError("cannot finalize an empty Trajectory: add transitions first")
    self._batched = _stack(self._transitions)

  @property
  def batched_transitions(self) -> Transition:
    """A `Transition` whose fields are `[1, T, ...]`."""
    if self._batched is None:
      self.finalize()
    return self._batched

  @property
  def terminated(self) -> bool:
    """True when the last transition ended the episode (not bootstrapped)."""
    return bool(self.batched_transitions.done[0, -1])

  def sample(self, num_samples: int = 1, k_steps: int = 5,
             rng: Optional[np.random.Generator] = None) -> list:
    """Samples windows of this trajectory.

    Args:
      num_samples: number of windows.
      k_steps: window length K.
      rng: numpy Generator; a fresh one when None.

    Returns:
      a list of `num_samples` Transitions with fields `[1, k_steps, ...]`.
    """
    _check_positive_int(k_steps, "k_steps")
    _check_positive_int(num_samples, "num_samples")
    rng = np.random.default_rng() if rng is None else rng
    steps = _to_numpy(self.batched_transitions)
    length = np.array([len(self)])
    if not _can_sample(length, np.array([self.terminated]), k_steps)[0]:
      raise ValueError(
          f"trajectory of {len(self)} steps that did not terminate is too short "
          f"for windows of k_steps={k_steps}")
    windows = _gather_windows(steps, np.zeros(num_samples, np.int64),
                              np.repeat(length, num_samples),
                              np.repeat(self.terminated, num_samples), k_steps, rng)
    return [windows[i:i + 1] for i in range(num_samples)]

  def __len__(self):
    return len(self._transitions)


class TrajectoryReplayBuffer:
  """A ring buffer holding the latest `capacity` trajectories.

  Trajectories are drawn in proportion to the weight `w` given to `add`, then
  windows start uniformly inside them. The buffer owns its random generator.
  """

  def __init__(self, capacity: int, random_seed: Optional[int] = None):
    _check_positive_int(capacity, "capacity")
    self.capacity = int(capacity)
    self._rng = np.random.default_rng(random_seed)
    self.clear()

  def add(self, trajectory: Trajectory, w: float = 1.):
    """Stores a trajectory (evicting the oldest when full) with weight `w`."""
    if not isinstance(trajectory, Trajectory):
      raise TypeError(f"add expects a muax.Trajectory, got {type(trajectory).__name__}")
    if len(trajectory) == 0:
      raise ValueError("cannot add an empty Trajectory")
    w = float(w)
    if not np.isfinite(w) or w < 0.:
      raise ValueError(f"trajectory weight must be finite and >= 0, got w={w!r}")
    steps = _to_numpy(trajectory.batched_transitions)
    if self._trajectories:
      _check_compatible(self._trajectories[0][0], steps)
    self._trajectories.append((steps, trajectory.terminated, w))
    self._flat = None

  def sample(self, batch_size: int = 32, num_trajectory: Optional[int] = None,
             k_steps: int = 5, sample_per_trajectory: int = 1, *,
             num_batches: Optional[int] = None) -> Transition:
    """Samples a batch of K-step windows.

    Args:
      batch_size: B when `num_trajectory` is None.
      num_trajectory: trajectories to draw; then B = num_trajectory *
        sample_per_trajectory.
      k_steps: window length K.
      sample_per_trajectory: windows drawn from each drawn trajectory.
      num_batches: U independent batches at once, for `MuZero.update_many`.

    Returns:
      a Transition with fields `[B, k_steps, ...]`, or `[U, B, k_steps, ...]`
      with `num_batches` (numpy arrays).
    """
    if num_batches is not None:
      _check_positive_int(num_batches, "num_batches")
    _check_positive_int(k_steps, "k_steps")
    _check_positive_int(sample_per_trajectory, "sample_per_trajectory")
    if num_trajectory is None:
      _check_positive_int(batch_size, "batch_size")
      batch = int(batch_size)
      num_trajectory = -(-batch // sample_per_trajectory)
    else:
      _check_positive_int(num_trajectory, "num_trajectory")
      batch = int(num_trajectory) * int(sample_per_trajectory)
    if not self._trajectories:
      raise ValueError("cannot sample from an empty replay buffer: add trajectories first")
    flat, offsets, lengths, terminated, weights = self._flat_storage()
    eligible = _can_sample(lengths, terminated, k_steps)
    if not eligible.any():
      raise ValueError(
          f"no trajectory in the buffer can supply a window of k_steps={k_steps}: "
          f"the longest of {len(lengths)} unterminated trajectories has "
          f"{lengths.max()} steps")
    p = np.where(eligible, weights, 0.)
    p = p / p.sum() if p.sum() > 0 else eligible / eligible.sum()
    rows = 1 if num_batches is None else int(num_batches)
    chosen = self._rng.choice(len(lengths), size=(rows, num_trajectory), p=p)
    chosen = np.repeat(chosen, sample_per_trajectory, axis=1)[:, :batch].reshape(-1)
    windows = _gather_windows(flat, offsets[chosen], lengths[chosen],
                              terminated[chosen], k_steps, self._rng)
    if num_batches is None:
      return windows
    return Transition(*(x.reshape((rows, batch) + x.shape[1:]) for x in windows))

  def clear(self):
    """Removes every trajectory."""
    self._trajectories = collections.deque(maxlen=self.capacity)
    self._flat = None

  def __len__(self):
    return len(self._trajectories)

  def num_transitions(self) -> int:
    """Number of stored steps over all trajectories."""
    return sum(len(t[0].a) for t in self._trajectories)

  def _flat_storage(self):
    # Rebuilt lazily after adds: one concatenation per episode, then every
    # sample of the batch is a single fancy index into these arrays.
    if self._flat is None:
      steps = [t[0] for t in self._trajectories]
      lengths = np.array([len(s.a) for s in steps], np.int64)
      offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
      flat = Transition(*(np.concatenate(fields) for fields in zip(*steps)))
      terminated = np.array([t[1] for t in self._trajectories])
      weights = np.array([t[2] for t in self._trajectories], np.float64)
      self._flat = (flat, offsets, lengths, terminated, weights)
    return self._flat


def _gather_windows(flat: Transition, offsets, lengths, terminated, k_steps, rng):
  """Gathers one K-step window per row from flat `[N, ...]` step arrays."""
  span = np.where(terminated, lengths, lengths - k_steps + 1)
  starts = np.floor(rng.random(len(lengths)) * span).astype(np.int64)
  index = starts[:, None] + np.arange(k_steps)[None, :]  # [B, K]
  inside = index < lengths[:, None]
  gather = offsets[:, None] + np.minimum(index, lengths[:, None] - 1)
  window = Transition(*(field[gather] for field in flat))
  if inside.all():
    return window
  return _absorb(window, inside, rng)


def _absorb(window: Transition, inside, rng) -> Transition:
  """Replaces the steps past a terminal state with absorbing-state targets."""
  past = ~inside
  zero = np.zeros((), np.float32)
  changes = dict(r=np.where(past, zero, window.r), Rn=np.where(past, zero, window.Rn),
                 v=np.where(past, zero, window.v), done=np.where(past, True, window.done))
  if window.pi.ndim == 3:
    num_actions = window.pi.shape[-1]
    uniform = np.full_like(window.pi, 1. / num_actions)
    changes["pi"] = np.where(past[..., None], uniform, window.pi)
    random_a = rng.integers(0, num_actions, size=window.a.shape, dtype=window.a.dtype)
    changes["a"] = np.where(past, random_a, window.a)
  return window.replace(**changes)


def _can_sample(lengths, terminated, k_steps):
  return terminated | (lengths >= k_steps)


def _to_numpy(batched: Transition) -> Transition:
  """`[1, T, ...]` fields to `[T, ...]` numpy arrays with fixed dtypes."""
  fields = {}
  for name, value in zip(FIELDS, batched):
    array = np.asarray(value)[0]
    dtype = _DTYPES.get(name, np.float32 if array.dtype.kind == "f" else array.dtype)
    fields[name] = array.astype(dtype, copy=False)
  return Transition(**fields)


def _stack(transitions) -> Transition:
  """Stacks single-step transitions into fields shaped `[1, T, ...]`."""
  columns = zip(*transitions)
  return Transition(*(np.stack([np.asarray(x) for x in column])[None]
                      for column in columns))


def _check_compatible(reference: Transition, steps: Transition):
  for name, ref, new in zip(FIELDS, reference, steps):
    if ref.shape[1:] != new.shape[1:]:
      raise ValueError(
          f"trajectory field {name!r} has per-step shape {new.shape[1:]}, but the "
          f"buffer holds {ref.shape[1:]}")


def _check_positive_int(value, name):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
