"""`Trajectory` and `TrajectoryReplayBuffer`, the uniform replay buffer
(re-exported by `muax.replay_buffer`)."""
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from muax import checks
from muax import replay_store
from muax.transition import Transition

__all__ = ["Trajectory", "TrajectoryReplayBuffer"]


class Trajectory:
  """The transitions of one episode, in order."""

  def __init__(self):
    self._transitions = []
    self._batched = None

  def add(self, transition: Transition) -> None:
    """Appends one transition (invalidates an earlier `finalize`)."""
    self._transitions.append(transition)
    self._batched = None

  def finalize(self) -> None:
    """Stacks the transitions into `batched_transitions` (`[1, T, ...]`)."""
    if not self._transitions:
      raise ValueError("cannot finalize an empty Trajectory: add transitions first")
    self._batched = replay_store.stack_steps(self._transitions)

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
    checks.positive_int("k_steps", k_steps)
    checks.positive_int("num_samples", num_samples)
    rng = np.random.default_rng() if rng is None else rng
    steps = replay_store.to_numpy(self.batched_transitions)
    length = np.array([len(self)])
    if not replay_store.can_sample(length, np.array([self.terminated]), k_steps)[0]:
      raise ValueError(
          f"trajectory of {len(self)} steps that did not terminate is too short "
          f"for windows of k_steps={k_steps}")
    windows = replay_store.gather_windows(steps, np.zeros(num_samples, np.int64),
                              np.repeat(length, num_samples),
                              np.repeat(self.terminated, num_samples), k_steps, rng)
    return [windows[i:i + 1] for i in range(num_samples)]

  def __len__(self):
    return len(self._transitions)


class TrajectoryReplayBuffer:
  """A ring buffer of the latest trajectories, within up to three bounds.

  After each `add`, the oldest trajectories are evicted while the buffer holds
  more than `capacity` trajectories, more than `max_transitions` steps, or
  more than `max_bytes` bytes of step arrays. Trajectories are drawn in
  proportion to the weight `w` given to `add`, then windows start uniformly
  inside them. The buffer owns its random generator.

  Attributes:
    capacity: most trajectories kept, or None.
    max_transitions: most steps kept over all trajectories, or None.
    max_bytes: most bytes of stored step arrays (all fields), or None.
    obs_dtype: the dtype observations are stored (and sampled) in, or None
      for float32 (float observations) or their own integer dtype.
  """

  prioritized = False  # see PrioritizedReplayBuffer

  def __init__(self, capacity: Optional[int] = None, random_seed: Optional[int] = None,
               *, max_transitions: Optional[int] = None, max_bytes: Optional[int] = None,
               obs_dtype=None):
    """Makes an empty buffer.

    Args:
      capacity: most trajectories kept.
      random_seed: seed of the buffer's own numpy Generator.
      max_transitions: most steps kept over all trajectories.
      max_bytes: most bytes of stored step arrays, all fields together.
      obs_dtype: store observations cast to this dtype (e.g. `np.uint8` for
        images, `np.float16`); an integer dtype refuses observations it
        cannot represent exactly.

    Raises:
      ValueError: no bound is given, or a bound or `obs_dtype` is invalid.
    """
    self.capacity, self.max_transitions, self.max_bytes = replay_store.check_bounds(
        capacity, max_transitions, max_bytes)
    self.obs_dtype = replay_store.check_obs_dtype(obs_dtype)
    self.random_seed = random_seed  # None: `fit` seeds it from its own random_seed
    self._rng = np.random.default_rng(random_seed)
    self.clear()

  def seed(self, random_seed: int) -> None:
    """Restarts the buffer's generator from `random_seed` (what is stored is kept)."""
    self.random_seed = random_seed
    self._rng = np.random.default_rng(random_seed)

  def add(self, trajectory: Trajectory, w: float = 1.) -> None:
    """Stores a trajectory with weight `w`, then evicts the oldest over a bound.

    Raises:
      ValueError: the trajectory is empty, alone exceeds `max_transitions` or
        `max_bytes`, does not match the stored per-step shapes, or has
        observations `obs_dtype` cannot represent; nothing is stored then.
    """
    if not isinstance(trajectory, Trajectory):
      raise TypeError(f"add expects a muax.Trajectory, got {type(trajectory).__name__}")
    if len(trajectory) == 0:
      raise ValueError("cannot add an empty Trajectory")
    w = float(w)
    if not np.isfinite(w) or w < 0.:
      raise ValueError(f"trajectory weight must be finite and >= 0, got w={w!r}")
    steps = replay_store.to_numpy(trajectory.batched_transitions, self.obs_dtype)
    if self._store is not None:
      replay_store.check_compatible(self._store, steps)
      # Mixed observation dtypes are promoted, as concatenating them would.
      steps = steps.replace(obs=steps.obs.astype(
          np.result_type(self._store.obs.dtype, steps.obs.dtype), copy=False))
    length, step_bytes = len(steps.a), self._bytes_per_step(steps)
    self._check_fits(length, step_bytes)
    while self._trajectories and self._over_bound(
        len(self._trajectories) + 1, self._count + length, step_bytes):
      evicted = self._trajectories.popleft()
      self._head = (self._head + evicted) % len(self._store.a)
      self._count -= evicted
    self._reserve(self._count + length, steps)
    start = (self._head + self._count) % len(self._store.a)
    replay_store.write_ring(self._store, start, steps)
    self._trajectories.append(start, length, trajectory.terminated, w)
    self._count += length

  def sample(self, batch_size: int = 32, num_trajectory: Optional[int] = None,
             k_steps: int = 5, sample_per_trajectory: int = 1, *,
             num_batches: Optional[int] = None,
             bootstrap: Optional[Tuple[int, float]] = None) -> Transition:
    """Samples a batch of K-step windows.

    Args:
      batch_size: B when `num_trajectory` is None.
      num_trajectory: trajectories to draw; then B = num_trajectory *
        sample_per_trajectory.
      k_steps: window length K.
      sample_per_trajectory: windows drawn from each drawn trajectory.
      num_batches: U independent batches at once, for `MuZero.update_many`.
      bootstrap: `(n, discount)` of the tracer that computed `Rn` (the
        discount per step, negative for two-player tracers), to add what
        reanalysis needs: `next_obs`, `next_v`, `next_discount`, `inside`.

    Returns:
      a Transition with fields `[B, k_steps, ...]`, or `[U, B, k_steps, ...]`
      with `num_batches` (numpy arrays; observations in the stored dtype).
    """
    batch, num_trajectory, rows = replay_store.sample_sizes(
        batch_size, num_trajectory, k_steps, sample_per_trajectory, num_batches)
    bootstrap = replay_store.check_bootstrap(bootstrap)
    starts, lengths, terminated, weights = self._trajectories.columns()
    eligible = self._eligible(k_steps)
    p = np.where(eligible, weights, 0.)
    p = p / p.sum() if p.sum() > 0 else eligible / eligible.sum()
    chosen = self._rng.choice(len(lengths), size=(rows, num_trajectory), p=p)
    chosen = np.repeat(chosen, sample_per_trajectory, axis=1)[:, :batch].reshape(-1)
    windows = replay_store.gather_windows(self._store, starts[chosen], lengths[chosen],
                              terminated[chosen], k_steps, self._rng, bootstrap=bootstrap)
    return replay_store.unflatten(windows, rows, batch, num_batches)

  def _eligible(self, k_steps) -> np.ndarray:
    """`[T]` True for the trajectories that can supply a K-step window."""
    if not self._trajectories:
      raise ValueError("cannot sample from an empty replay buffer: add trajectories first")
    _, lengths, terminated, _ = self._trajectories.columns()
    eligible = replay_store.can_sample(lengths, terminated, k_steps)
    if not eligible.any():
      raise ValueError(
          f"no trajectory in the buffer can supply a window of k_steps={k_steps}: "
          f"the longest of {len(lengths)} unterminated trajectories has "
          f"{lengths.max()} steps")
    return eligible

  def clear(self) -> None:
    """Removes every trajectory and frees the storage."""
    self._trajectories = replay_store.TrajectoryIndex()
    self._store = None  # a Transition of `[ring_size, ...]` arrays
    self._head = 0  # ring position of the oldest stored step
    self._count = 0  # stored steps

  def __len__(self):
    return len(self._trajectories)

  def num_transitions(self) -> int:
    """Number of stored steps over all trajectories."""
    return self._count

  def nbytes(self) -> int:
    """Bytes of the stored steps, all fields together (what `max_bytes` bounds)."""
    return 0 if self._store is None else self._count * self._bytes_per_step(self._store)

  def _bytes_per_step(self, steps: Transition) -> int:
    """What one stored step costs: its fields (and, in subclasses, per-step
    bookkeeping such as a priority)."""
    return replay_store.step_bytes(steps)

  def state(self) -> Tuple[dict, Dict[str, np.ndarray]]:
    """The buffer's contents, bounds and random state, without pickle.

    Returns:
      `(meta, arrays)`: `meta` a JSON-serialisable dict (bounds, `obs_dtype`
      name, the generator's state); `arrays` a dict of numpy arrays for
      `np.savez`: per trajectory, oldest first, `lengths` `[T]`, `terminated`
      `[T]` and `weights` `[T]`; per field, `step_<field>` `[N, ...]` with the
      steps of all trajectories in the same order (absent when empty).
    """
    meta = {"format": replay_store.STATE_FORMAT, "version": replay_store.STATE_VERSION,
            "capacity": self.capacity, "max_transitions": self.max_transitions,
            "max_bytes": self.max_bytes,
            "obs_dtype": None if self.obs_dtype is None else self.obs_dtype.name,
            "rng": self._rng.bit_generator.state}
    _, lengths, terminated, weights = self._trajectories.columns()
    arrays = {"lengths": lengths.copy(), "terminated": terminated.copy(),
              "weights": weights.copy()}
    if self._store is not None:
      for name, field in self._store.fields().items():
        arrays[f"step_{name}"] = replay_store.read_ring(field, self._head, self._count)
    return meta, arrays

  def restore(self, meta: dict, arrays: Mapping[str, Any]) -> None:
    """Makes this buffer equal to the one `state` was taken from.

    Bounds and `obs_dtype` come from `meta`, whatever this buffer was built
    with; afterwards the same `add` / `sample` calls give the same results.

    Args:
      meta: the dict from `state` (e.g. after a JSON round trip).
      arrays: the arrays from `state` (a dict, or what `np.load` returns).

    Raises:
      ValueError: `meta` or `arrays` do not describe a valid buffer; this
        buffer is unchanged then.
    """
    if not self.prioritized and isinstance(meta, dict) and "prioritized" in meta:
      raise ValueError("replay buffer state was saved by a PrioritizedReplayBuffer; "
                       "restore it into one")
    bounds, obs_dtype, rng = replay_store.parse_meta(meta)
    lengths, terminated, weights, steps = replay_store.parse_arrays(arrays, obs_dtype)
    # The fields alone: states written before priorities were counted fit that
    # way; the next `add` evicts down to the full bound.
    replay_store.check_restored_bounds(
        bounds, lengths, 0 if steps is None else replay_store.step_bytes(steps))
    self.capacity, self.max_transitions, self.max_bytes = bounds
    self.obs_dtype, self._rng = obs_dtype, rng
    self.clear()
    if steps is None:
      return
    self._store = replay_store.map_steps(np.array, steps)
    self._count = int(lengths.sum())
    for start, n, t, w in zip(np.cumsum(lengths) - lengths, lengths, terminated, weights):
      self._trajectories.append(start, n, t, w)

  def _check_fits(self, length, step_bytes):
    if self.max_transitions is not None and length > self.max_transitions:
      raise ValueError(
          f"a trajectory of {length} steps cannot fit in a buffer of "
          f"max_transitions={self.max_transitions}")
    if self.max_bytes is not None and length * step_bytes > self.max_bytes:
      raise ValueError(
          f"a trajectory of {length} steps takes {length * step_bytes} bytes "
          f"({step_bytes} per step), more than max_bytes={self.max_bytes}")

  def _over_bound(self, num_trajectories, num_steps, step_bytes) -> bool:
    return ((self.capacity is not None and num_trajectories > self.capacity)
            or (self.max_transitions is not None and num_steps > self.max_transitions)
            or (self.max_bytes is not None and num_steps * step_bytes > self.max_bytes))

  def _reserve(self, needed: int, steps: Transition):
    """Makes the ring hold `needed` steps shaped and typed like `steps`."""
    old = self._store
    size = 0 if old is None else len(old.a)
    same_dtype = old is not None and old.obs.dtype == steps.obs.dtype
    if needed <= size and same_dtype:
      return
    # Doubling keeps the copies amortised; the step bound caps the ring.
    new_size = size if needed <= size else max(needed, 2 * size)
    if self.max_transitions is not None:
      new_size = min(new_size, self.max_transitions)
    if self.max_bytes is not None:
      new_size = min(new_size, self.max_bytes // self._bytes_per_step(steps))
    new_size = max(new_size, needed)
    store = replay_store.map_steps(lambda x: np.empty((new_size,) + x.shape[1:], x.dtype), steps)
    if old is not None:
      for name, field in old.fields().items():
        replay_store.copy_from_ring(getattr(store, name), field, self._head, self._count)
      self._trajectories.rebase(self._head, size)
    self._store, self._head = store, 0
