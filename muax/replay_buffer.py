"""Trajectories and a bounded ring buffer of them, sampled as `[B, K, ...]` windows.

A window of K steps starts at any step of a trajectory. Past the end of a
*terminated* episode the window continues in the absorbing state, as in the
MuZero pseudocode: reward 0, value target 0, uniform policy target, random
action. A trajectory that ended without terminating (time limit, or cut by the
user) has no known future, so its windows must fit inside it.

Storage is one ring of steps per field: a trajectory is copied in once, at
`add`, and the oldest trajectories are overwritten as they are evicted. The
ring grows by doubling until it reaches the step bound (`max_transitions`, or
what `max_bytes` allows), so memory stays flat once the buffer is full.
Sampling gathers all windows of a batch with one fancy index per field.
"""
from typing import Optional

import numpy as np

from muax import checks
from muax.transition import EXTRA_FIELDS, FIELDS, Transition

__all__ = ["PrioritizedReplayBuffer", "Trajectory", "TrajectoryReplayBuffer", "Transition"]

_DTYPES = {"a": np.int32, "r": np.float32, "done": np.bool_, "Rn": np.float32,
           "v": np.float32, "pi": np.float32, "w": np.float32, "mask": np.bool_,
           "candidates": np.float32}
_STATE_FORMAT = "muax.TrajectoryReplayBuffer"
_STATE_VERSION = 1
_PRIORITY_DTYPE = np.float64
_PRIORITY_BYTES = np.dtype(_PRIORITY_DTYPE).itemsize
_META_KEYS = ("format", "version", "capacity", "max_transitions", "max_bytes",
              "obs_dtype", "rng")
_INDEX_KEYS = ("lengths", "terminated", "weights")
_STEP_KEYS = tuple(f"step_{name}" for name in FIELDS)
_OPTIONAL_STEP_KEYS = tuple(f"step_{name}" for name in EXTRA_FIELDS)


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
    checks.positive_int("k_steps", k_steps)
    checks.positive_int("num_samples", num_samples)
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
    self.capacity, self.max_transitions, self.max_bytes = _check_bounds(
        capacity, max_transitions, max_bytes)
    self.obs_dtype = _check_obs_dtype(obs_dtype)
    self.random_seed = random_seed  # None: `fit` seeds it from its own random_seed
    self._rng = np.random.default_rng(random_seed)
    self.clear()

  def seed(self, random_seed: int):
    """Restarts the buffer's generator from `random_seed` (what is stored is kept)."""
    self.random_seed = random_seed
    self._rng = np.random.default_rng(random_seed)

  def add(self, trajectory: Trajectory, w: float = 1.):
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
    steps = _to_numpy(trajectory.batched_transitions, self.obs_dtype)
    if self._store is not None:
      _check_compatible(self._store, steps)
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
    _write_ring(self._store, start, steps)
    self._trajectories.append(start, length, trajectory.terminated, w)
    self._count += length

  def sample(self, batch_size: int = 32, num_trajectory: Optional[int] = None,
             k_steps: int = 5, sample_per_trajectory: int = 1, *,
             num_batches: Optional[int] = None, bootstrap=None) -> Transition:
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
    batch, num_trajectory, rows = _sample_sizes(
        batch_size, num_trajectory, k_steps, sample_per_trajectory, num_batches)
    bootstrap = _check_bootstrap(bootstrap)
    starts, lengths, terminated, weights = self._trajectories.columns()
    eligible = self._eligible(k_steps)
    p = np.where(eligible, weights, 0.)
    p = p / p.sum() if p.sum() > 0 else eligible / eligible.sum()
    chosen = self._rng.choice(len(lengths), size=(rows, num_trajectory), p=p)
    chosen = np.repeat(chosen, sample_per_trajectory, axis=1)[:, :batch].reshape(-1)
    windows = _gather_windows(self._store, starts[chosen], lengths[chosen],
                              terminated[chosen], k_steps, self._rng, bootstrap=bootstrap)
    return _unflatten(windows, rows, batch, num_batches)

  def _eligible(self, k_steps) -> np.ndarray:
    """`[T]` True for the trajectories that can supply a K-step window."""
    if not self._trajectories:
      raise ValueError("cannot sample from an empty replay buffer: add trajectories first")
    _, lengths, terminated, _ = self._trajectories.columns()
    eligible = _can_sample(lengths, terminated, k_steps)
    if not eligible.any():
      raise ValueError(
          f"no trajectory in the buffer can supply a window of k_steps={k_steps}: "
          f"the longest of {len(lengths)} unterminated trajectories has "
          f"{lengths.max()} steps")
    return eligible

  def clear(self):
    """Removes every trajectory and frees the storage."""
    self._trajectories = _TrajectoryIndex()
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
    return _step_bytes(steps)

  def state(self):
    """The buffer's contents, bounds and random state, without pickle.

    Returns:
      `(meta, arrays)`: `meta` a JSON-serialisable dict (bounds, `obs_dtype`
      name, the generator's state); `arrays` a dict of numpy arrays for
      `np.savez`: per trajectory, oldest first, `lengths` `[T]`, `terminated`
      `[T]` and `weights` `[T]`; per field, `step_<field>` `[N, ...]` with the
      steps of all trajectories in the same order (absent when empty).
    """
    meta = {"format": _STATE_FORMAT, "version": _STATE_VERSION,
            "capacity": self.capacity, "max_transitions": self.max_transitions,
            "max_bytes": self.max_bytes,
            "obs_dtype": None if self.obs_dtype is None else self.obs_dtype.name,
            "rng": self._rng.bit_generator.state}
    _, lengths, terminated, weights = self._trajectories.columns()
    arrays = {"lengths": lengths.copy(), "terminated": terminated.copy(),
              "weights": weights.copy()}
    if self._store is not None:
      for name, field in self._store.fields().items():
        arrays[f"step_{name}"] = _read_ring(field, self._head, self._count)
    return meta, arrays

  def restore(self, meta: dict, arrays):
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
    bounds, obs_dtype, rng = _parse_meta(meta)
    lengths, terminated, weights, steps = _parse_arrays(arrays, obs_dtype)
    # The fields alone: states written before priorities were counted fit that
    # way; the next `add` evicts down to the full bound.
    _check_restored_bounds(bounds, lengths, 0 if steps is None else _step_bytes(steps))
    self.capacity, self.max_transitions, self.max_bytes = bounds
    self.obs_dtype, self._rng = obs_dtype, rng
    self.clear()
    if steps is None:
      return
    self._store = _map(np.array, steps)
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
    store = _map(lambda x: np.empty((new_size,) + x.shape[1:], x.dtype), steps)
    if old is not None:
      for name, field in old.fields().items():
        _copy_from_ring(getattr(store, name), field, self._head, self._count)
      self._trajectories.rebase(self._head, size)
    self._store, self._head = store, 0


class PrioritizedReplayBuffer(TrajectoryReplayBuffer):
  """A `TrajectoryReplayBuffer` that samples windows by the priority of their
  first step (prioritized experience replay, Schaul et al., 2016).

  A window starting at step i is drawn with probability
  `P(i) = p_i^alpha / sum_j p_j^alpha` over the steps where a window may
  start, and carries the importance-sampling weight
  `(N P(i))^-beta / max_batch (N P(j))^-beta` as its loss weight
  (`batch.weight`, the same along the window). New steps get the largest
  priority seen so far, so each is likely to be replayed soon; after each
  update `update_priorities` sets `p_i = |error_i| + epsilon` from the
  value errors the update computed (`fit` does this for you). Beta anneals
  linearly from `beta` to `beta_final` over `beta_steps` sampled batches.
  Trajectory weights given to `add` are ignored.

  `sample(..., return_ids=True)` also returns the ids of the sampled steps;
  ids stay valid while their step is stored (evictions and growth of the
  ring do not move them), and updates to evicted steps are ignored.
  """

  prioritized = True

  def __init__(self, capacity: Optional[int] = None, random_seed: Optional[int] = None,
               *, alpha: float = 0.6, beta: float = 0.4, beta_final: float = 1.,
               beta_steps: int = 10_000, epsilon: float = 1e-3,
               max_transitions: Optional[int] = None, max_bytes: Optional[int] = None,
               obs_dtype=None):
    """Makes an empty buffer.

    Args:
      capacity, random_seed, max_transitions, max_bytes, obs_dtype: as for
        `TrajectoryReplayBuffer`.
      alpha: how much priorities count (0: uniform over steps).
      beta: importance-sampling exponent at the start (0: no correction).
      beta_final: the exponent after `beta_steps` sampled batches.
      beta_steps: batches over which beta anneals.
      epsilon: added to every priority so no step is never replayed.

    Raises:
      ValueError: a bound, alpha, beta or epsilon out of range.
    """
    super().__init__(capacity, random_seed, max_transitions=max_transitions,
                     max_bytes=max_bytes, obs_dtype=obs_dtype)
    self.alpha, self.beta, self.beta_final, self.beta_steps, self.epsilon = \
        _check_per_settings(alpha, beta, beta_final, beta_steps, epsilon)
    self.batches_sampled = 0

  @property
  def current_beta(self) -> float:
    """The importance-sampling exponent the next batch gets."""
    progress = min(1., self.batches_sampled / self.beta_steps)
    return self.beta + (self.beta_final - self.beta) * progress

  def clear(self):
    super().clear()
    self._priority = None  # `[ring_size]` raw priorities, parallel to the ring
    self._max_priority = 1.
    self._added = 0  # steps ever added: ids are `_added - _count + offset`

  def add(self, trajectory: Trajectory, w: float = 1.):
    super().add(trajectory, w)
    length = len(trajectory)
    self._added += length
    new = (self._head + self._count - length + np.arange(length)) % len(self._priority)
    self._priority[new] = self._max_priority

  def _bytes_per_step(self, steps: Transition) -> int:
    return _step_bytes(steps) + _PRIORITY_BYTES  # each step's float64 priority

  def _reserve(self, needed: int, steps: Transition):
    old, head, count, store = self._priority, self._head, self._count, self._store
    super()._reserve(needed, steps)
    if self._store is not store or self._priority is None:
      priority = np.zeros(len(self._store.a), _PRIORITY_DTYPE)
      if old is not None:
        _copy_from_ring(priority, old, head, count)
      self._priority = priority

  def sample(self, batch_size: int = 32, num_trajectory: Optional[int] = None,
             k_steps: int = 5, sample_per_trajectory: int = 1, *,
             num_batches: Optional[int] = None, bootstrap=None, return_ids: bool = False):
    """Samples windows by priority; `batch.weight` holds their IS weights.

    Arguments as for `TrajectoryReplayBuffer.sample` (B is
    `num_trajectory * sample_per_trajectory` or `batch_size`, every window
    drawn independently by priority).

    Returns:
      the batch, or `(batch, ids)` with `return_ids`: ids `[B]` (`[U, B]`)
      of the first step of each window, for `update_priorities`.
    """
    batch, _, rows = _sample_sizes(batch_size, num_trajectory, k_steps,
                                   sample_per_trajectory, num_batches)
    bootstrap = _check_bootstrap(bootstrap)
    self._eligible(k_steps)  # clear errors for an empty or too-short buffer
    starts, lengths, terminated, _ = self._trajectories.columns()
    first = np.cumsum(lengths) - lengths  # each trajectory's first logical step
    owner = np.repeat(np.arange(len(lengths)), lengths)  # [N] trajectory of each step
    offset = np.arange(self._count) - first[owner]
    may_start = terminated[owner] | (offset <= lengths[owner] - k_steps)
    p = np.where(may_start, _read_ring(self._priority, self._head, self._count), 0.)
    p = p ** self.alpha if self.alpha != 1. else p
    cdf = np.cumsum(p)
    size = rows * batch
    if cdf[-1] > 0:
      picked = np.searchsorted(cdf, self._rng.random(size) * cdf[-1], side="right")
      picked = np.minimum(picked, self._count - 1)
      prob = p[picked] / cdf[-1]
    else:  # alpha > 0 and every priority 0 cannot happen (epsilon); be safe
      picked = self._rng.choice(np.flatnonzero(may_start), size=size)
      prob = np.full(size, 1. / may_start.sum())
    weight = (may_start.sum() * prob) ** -self.current_beta
    weight = weight.reshape(rows, batch)
    weight = (weight / weight.max(axis=1, keepdims=True)).astype(np.float32)
    self.batches_sampled += rows
    chosen = owner[picked]
    windows = _gather_windows(self._store, starts[chosen], lengths[chosen],
                              terminated[chosen], k_steps, self._rng, starts=offset[picked],
                              bootstrap=bootstrap)
    windows = windows.replace(weight=np.repeat(weight.reshape(-1, 1), k_steps, axis=1))
    windows = _unflatten(windows, rows, batch, num_batches)
    if not return_ids:
      return windows
    ids = (self._added - self._count + picked).astype(np.int64)
    return windows, ids.reshape(rows, batch) if num_batches is not None else ids

  def update_priorities(self, ids, priorities):
    """Sets the priority of the steps `ids` to `|priorities| + epsilon`.

    Ids of steps evicted since they were sampled are ignored.

    Raises:
      ValueError: shapes differ, or a priority is NaN or infinite.
    """
    ids = np.asarray(ids).reshape(-1)
    priorities = np.asarray(priorities, np.float64).reshape(-1)
    if ids.shape != priorities.shape:
      raise ValueError(f"update_priorities got {ids.size} ids and {priorities.size} "
                       "priorities: one priority per id")
    if ids.size and ids.dtype.kind not in "iu":
      raise ValueError(f"ids must be integers from sample(return_ids=True), got {ids.dtype}")
    if not np.isfinite(priorities).all():
      raise ValueError("priorities must be finite; got NaN or inf (a diverged update?)")
    offset = ids - (self._added - self._count)
    live = (offset >= 0) & (offset < self._count)
    if not live.any():
      return
    new = np.abs(priorities[live]) + self.epsilon
    self._priority[(self._head + offset[live]) % len(self._priority)] = new
    self._max_priority = max(self._max_priority, float(new.max()))

  def priorities(self) -> np.ndarray:
    """The raw priority of every stored step, oldest first."""
    if self._priority is None:
      return np.zeros(0)
    return _read_ring(self._priority, self._head, self._count)

  def state(self):
    """`TrajectoryReplayBuffer.state` plus the priorities and their settings."""
    meta, arrays = super().state()
    meta["prioritized"] = {
        "alpha": self.alpha, "beta": self.beta, "beta_final": self.beta_final,
        "beta_steps": self.beta_steps, "epsilon": self.epsilon,
        "batches_sampled": self.batches_sampled, "max_priority": self._max_priority,
        "added": self._added}
    arrays["priorities"] = self.priorities()
    return meta, arrays

  def restore(self, meta: dict, arrays):
    """Makes this buffer equal to the one `state` was taken from.

    Raises:
      ValueError: the state is not a prioritized buffer's, or is invalid;
        this buffer is unchanged then.
    """
    per = meta.get("prioritized") if isinstance(meta, dict) else None
    if not isinstance(per, dict) or "priorities" not in arrays:
      raise ValueError("replay buffer state has no priorities: it was saved by a "
                       "uniform TrajectoryReplayBuffer, not a PrioritizedReplayBuffer")
    try:
      settings = _check_per_settings(per["alpha"], per["beta"], per["beta_final"],
                                     per["beta_steps"], per["epsilon"])
      counters = int(per["batches_sampled"]), float(per["max_priority"]), int(per["added"])
    except (KeyError, TypeError) as e:
      raise ValueError(f"replay buffer meta['prioritized'] is invalid: {e}") from e
    priorities = np.asarray(arrays["priorities"], np.float64)
    total = int(np.sum(arrays["lengths"])) if "lengths" in arrays else -1
    if priorities.shape != (total,) or not np.isfinite(priorities).all() \
        or (priorities < 0).any():
      raise ValueError(f"replay buffer priorities have shape {priorities.shape}; expected "
                       f"[{total}] finite values >= 0, one per stored step")
    if counters[2] < total:
      raise ValueError(f"replay buffer meta says {counters[2]} steps were added, fewer "
                       f"than the {total} stored")
    rest = {k: arrays[k] for k in arrays.keys() if k != "priorities"}
    super().restore(meta, rest)
    self.alpha, self.beta, self.beta_final, self.beta_steps, self.epsilon = settings
    self.batches_sampled, self._max_priority, self._added = counters
    self._priority = priorities.copy() if total else None


def _check_per_settings(alpha, beta, beta_final, beta_steps, epsilon):
  for name, value, low, high in (("alpha", alpha, 0., np.inf), ("beta", beta, 0., 1.),
                                 ("beta_final", beta_final, 0., 1.)):
    checks.number(name, value, low=low, high=high, what=f"a number in [{low:g}, {high:g}]",
                  not_a_number=ValueError)
  checks.positive_int("beta_steps", beta_steps)
  if not isinstance(epsilon, (int, float, np.number)) or not 0. < float(epsilon) < np.inf:
    raise ValueError(f"epsilon must be a number > 0, got epsilon={epsilon!r}")
  return float(alpha), float(beta), float(beta_final), int(beta_steps), float(epsilon)


class _TrajectoryIndex:
  """Start, length, terminated and weight of each stored trajectory, oldest first.

  Numpy columns with a live range `[lo, hi)`: appends write at `hi`, evictions
  move `lo`, and the live range moves to the front when `hi` reaches the end,
  so both are amortised O(1) and `columns` returns views without copying.
  """

  def __init__(self):
    self._columns = (np.empty(16, np.int64), np.empty(16, np.int64),
                     np.empty(16, np.bool_), np.empty(16, np.float64))
    self._lo = self._hi = 0

  def __len__(self):
    return self._hi - self._lo

  def append(self, start, length, terminated, weight):
    if self._hi == len(self._columns[0]):
      live = len(self)
      size = max(16, 2 * live)
      self._columns = tuple(_moved(c, self._lo, self._hi, size) for c in self._columns)
      self._lo, self._hi = 0, live
    for column, value in zip(self._columns, (start, length, terminated, weight)):
      column[self._hi] = value
    self._hi += 1

  def popleft(self) -> int:
    """Forgets the oldest trajectory; returns its length."""
    length = int(self._columns[1][self._lo])
    self._lo += 1
    return length

  def columns(self):
    """`(starts, lengths, terminated, weights)` views `[T]`, oldest first."""
    return tuple(c[self._lo:self._hi] for c in self._columns)

  def rebase(self, head: int, ring_size: int):
    """Moves the starts to a ring unrolled from `head` to position 0."""
    starts = self._columns[0][self._lo:self._hi]
    starts[:] = (starts - head) % ring_size


def _gather_windows(flat: Transition, offsets, lengths, terminated, k_steps, rng,
                    starts=None, bootstrap=None):
  """Gathers one K-step window per row from `[N, ...]` step arrays (a ring).

  Windows start at `starts` (offsets inside each trajectory), or uniformly
  where a window may start when None. With `bootstrap=(n, discount)` the
  window also gets the fields reanalysis needs (see `Transition`).
  """
  if starts is None:
    span = np.where(terminated, lengths, lengths - k_steps + 1)
    starts = np.floor(rng.random(len(lengths)) * span).astype(np.int64)
  index = starts[:, None] + np.arange(k_steps)[None, :]  # [B, K]
  inside = index < lengths[:, None]
  gather = offsets[:, None] + np.minimum(index, lengths[:, None] - 1)
  # `take` is much faster than fancy indexing for `[N, ...]` fields; "wrap"
  # reads a window that runs past the end of the ring from its start.
  window = _map(lambda field: np.take(field, gather, axis=0, mode="wrap"), flat)
  if not inside.all():
    window = _absorb(window, inside, rng)
  if bootstrap is None:
    return window
  n, discount = bootstrap
  # `Rn` of step t bootstrapped from `v[t+n]` when `done` is False and step
  # t+n is stored; otherwise (a terminal tail, or a time limit's bootstrap
  # value) it is kept as it is: `next_discount` 0.
  target = index + n
  known = inside & ~window.done & (target < lengths[:, None])
  source = offsets[:, None] + np.minimum(target, lengths[:, None] - 1)
  take = lambda field: np.take(field, source, axis=0, mode="wrap")  # noqa: E731
  return window.replace(
      next_obs=take(flat.obs), next_v=np.where(known, take(flat.v), np.float32(0.)),
      next_discount=np.where(known, np.float32(discount ** n), np.float32(0.)),
      inside=inside)


def _sample_sizes(batch_size, num_trajectory, k_steps, sample_per_trajectory, num_batches):
  """`(B, trajectories per batch, U or 1)`, checked."""
  if num_batches is not None:
    checks.positive_int("num_batches", num_batches)
  checks.positive_int("k_steps", k_steps)
  checks.positive_int("sample_per_trajectory", sample_per_trajectory)
  if num_trajectory is None:
    checks.positive_int("batch_size", batch_size)
    batch = int(batch_size)
    num_trajectory = -(-batch // sample_per_trajectory)
  else:
    checks.positive_int("num_trajectory", num_trajectory)
    batch = int(num_trajectory) * int(sample_per_trajectory)
  return batch, num_trajectory, 1 if num_batches is None else int(num_batches)


def _unflatten(windows: Transition, rows: int, batch: int, num_batches) -> Transition:
  """`[U*B, ...]` windows as `[U, B, ...]` (as they are without `num_batches`)."""
  if num_batches is None:
    return windows
  return _map(lambda x: x.reshape((rows, batch) + x.shape[1:]), windows)


def _check_bootstrap(bootstrap):
  """`(n, discount)` validated, or None."""
  if bootstrap is None:
    return None
  try:
    n, discount = bootstrap
    discount = float(discount)
  except (TypeError, ValueError):
    raise ValueError(f"bootstrap must be (n, discount), got {bootstrap!r}") from None
  checks.positive_int("bootstrap n", n)
  if not -1. <= discount <= 1.:
    raise ValueError(f"bootstrap discount must be in [-1, 1], got {discount!r}")
  return int(n), discount


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
    random_a = rng.integers(0, num_actions, size=past.shape, dtype=np.int32)
    if window.candidates is not None:
      # Continuous actions: a random one of the (repeated) last candidates.
      chosen = np.take_along_axis(window.candidates, random_a[..., None, None], axis=2)[:, :, 0]
      changes["a"] = np.where(past[..., None], chosen, window.a)
    else:
      changes["a"] = np.where(past, random_a.astype(window.a.dtype), window.a)
  if window.mask is not None:  # every action is legal in the absorbing state
    changes["mask"] = np.where(past[..., None], True, window.mask)
  return window.replace(**changes)


def _can_sample(lengths, terminated, k_steps):
  return terminated | (lengths >= k_steps)


def _to_numpy(batched: Transition, obs_dtype=None) -> Transition:
  """`[1, T, ...]` fields to `[T, ...]` numpy arrays with fixed dtypes."""
  fields = {}
  for name, value in batched.fields().items():
    array = np.asarray(value)[0]
    if name == "obs" and obs_dtype is not None:
      fields[name] = _cast_obs(array, obs_dtype)
      continue
    dtype = _DTYPES.get(name, np.float32 if array.dtype.kind == "f" else array.dtype)
    if name == "a" and array.dtype.kind == "f" and array.ndim > 1:
      dtype = np.float32  # continuous action vectors `[T, D]`
    fields[name] = array.astype(dtype, copy=False)
  return Transition(**fields)


def _cast_obs(obs: np.ndarray, dtype: np.dtype) -> np.ndarray:
  """Casts observations to `dtype`, refusing values it would change silently."""
  problem = None
  if dtype.kind in "biu" and obs.size:
    if obs.dtype.kind == "c" or (obs.dtype.kind == "f" and not np.isfinite(obs).all()):
      problem = "NaN, infinite or complex values"
    elif obs.dtype.kind == "f" and (np.floor(obs) != obs).any():
      problem = f"non-integer values (e.g. {obs[np.floor(obs) != obs].flat[0]!r})"
    else:
      low, high = (0, 1) if dtype.kind == "b" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
      if obs.min() < low or obs.max() > high:
        problem = (f"values in [{obs.min()}, {obs.max()}], outside {dtype.name}'s "
                   f"[{low}, {high}]")
  elif dtype.kind == "f":
    with np.errstate(over="ignore"):
      cast = obs.astype(dtype)
    if (np.isfinite(obs) & ~np.isfinite(cast)).any():
      problem = f"finite values that overflow {dtype.name} (largest |x| = {np.abs(obs).max()})"
    else:
      return cast
  if problem is not None:
    raise ValueError(f"obs_dtype={dtype.name} cannot represent the observations "
                     f"exactly: {problem}")
  return obs.astype(dtype, copy=False)


def _stack(transitions) -> Transition:
  """Stacks single-step transitions into fields shaped `[1, T, ...]`."""
  names = list(transitions[0].fields())
  for i, t in enumerate(transitions):
    if list(t.fields()) != names:
      raise ValueError(f"transition {i} of the trajectory has fields {list(t.fields())}, "
                       f"but the first has {names}: every step must carry the same "
                       "optional fields (mask, candidates)")
  return Transition(**{name: np.stack([np.asarray(getattr(t, name)) for t in transitions])[None]
                       for name in names})


def _map(fn, steps: Transition) -> Transition:
  """A Transition of `fn(field)` for every present field."""
  return Transition(**{name: fn(x) for name, x in steps.fields().items()})


def _step_bytes(steps: Transition) -> int:
  """Bytes of one step over all fields of `[N, ...]` arrays."""
  return sum(x.itemsize * int(np.prod(x.shape[1:], dtype=np.int64))
             for x in steps.fields().values())


def _write_ring(store: Transition, start: int, steps: Transition):
  """Writes `[L, ...]` steps into the ring from `start`, wrapping at its end."""
  size = len(store.a)
  first = min(len(steps.a), size - start)
  for name, new in steps.fields().items():
    field = getattr(store, name)
    field[start:start + first] = new[:first]
    field[:len(new) - first] = new[first:]


def _read_ring(field: np.ndarray, head: int, count: int) -> np.ndarray:
  """A contiguous copy of the `count` ring entries from `head`."""
  out = np.empty((count,) + field.shape[1:], field.dtype)
  _copy_from_ring(out, field, head, count)
  return out


def _copy_from_ring(out: np.ndarray, field: np.ndarray, head: int, count: int):
  first = min(count, len(field) - head)
  out[:first] = field[head:head + first]
  out[first:count] = field[:count - first]


def _moved(column: np.ndarray, lo: int, hi: int, size: int) -> np.ndarray:
  """`column[lo:hi]` at the front of a new array of `size` entries."""
  out = np.empty(size, column.dtype)
  out[:hi - lo] = column[lo:hi]
  return out


def _check_compatible(reference: Transition, steps: Transition):
  have, new_fields = reference.fields(), steps.fields()
  if list(have) != list(new_fields):
    extra = lambda names: [n for n in names if n not in FIELDS] or "none"  # noqa: E731
    raise ValueError(f"trajectory has optional fields {extra(new_fields)}, but the buffer "
                     f"holds {extra(have)}: every trajectory must carry the same ones")
  for name, new in new_fields.items():
    ref = have[name]
    if ref.shape[1:] != new.shape[1:] or (name == "a" and ref.dtype.kind != new.dtype.kind):
      raise ValueError(
          f"trajectory field {name!r} has per-step shape {new.shape[1:]} ({new.dtype}), "
          f"but the buffer holds {ref.shape[1:]} ({ref.dtype})")


def _check_bounds(capacity, max_transitions, max_bytes):
  """Validated `(capacity, max_transitions, max_bytes)`, each int or None."""
  bounds = {"capacity": capacity, "max_transitions": max_transitions,
            "max_bytes": max_bytes}
  if all(value is None for value in bounds.values()):
    raise ValueError("TrajectoryReplayBuffer needs a bound: give capacity, "
                     "max_transitions or max_bytes (all are None)")
  for name, value in bounds.items():
    if value is not None:
      checks.positive_int(name, value)
  return tuple(None if v is None else int(v) for v in bounds.values())


def _check_obs_dtype(obs_dtype) -> Optional[np.dtype]:
  if obs_dtype is None:
    return None
  try:
    dtype = np.dtype(obs_dtype)
  except TypeError as e:
    raise ValueError(f"obs_dtype must be a numpy dtype, got obs_dtype={obs_dtype!r}") from e
  if dtype.kind not in "biuf":
    raise ValueError(f"obs_dtype must be a boolean, integer or float dtype, got "
                     f"obs_dtype={obs_dtype!r}")
  return dtype


def _parse_meta(meta):
  """`(bounds, obs_dtype, generator)` from a `state` meta dict."""
  if not isinstance(meta, dict):
    raise ValueError(f"replay buffer meta must be a dict, got {type(meta).__name__}")
  missing = [key for key in _META_KEYS if key not in meta]
  if missing:
    raise ValueError(f"replay buffer meta lacks keys {missing}")
  if meta["format"] != _STATE_FORMAT or meta["version"] != _STATE_VERSION:
    raise ValueError(f"replay buffer meta has format={meta['format']!r} version="
                     f"{meta['version']!r}; expected {_STATE_FORMAT!r} version "
                     f"{_STATE_VERSION}")
  bounds = _check_bounds(meta["capacity"], meta["max_transitions"], meta["max_bytes"])
  obs_dtype = _check_obs_dtype(meta["obs_dtype"])
  state = meta["rng"]
  name = state.get("bit_generator") if isinstance(state, dict) else None
  bit_generator = getattr(np.random, str(name), None)
  if not (isinstance(bit_generator, type)
          and issubclass(bit_generator, np.random.BitGenerator)):
    raise ValueError(f"replay buffer meta['rng'] names no numpy bit generator: {name!r}")
  try:
    generator = bit_generator()
    generator.state = state
  except (TypeError, ValueError, KeyError) as e:
    raise ValueError(f"replay buffer meta['rng'] is not a valid {name} state: {e}") from e
  return bounds, obs_dtype, np.random.Generator(generator)


def _parse_arrays(arrays, obs_dtype):
  """`(lengths, terminated, weights, steps or None)` from `state` arrays."""
  names = set(arrays.keys())
  missing = [key for key in _INDEX_KEYS if key not in names]
  if missing:
    raise ValueError(f"replay buffer arrays lack {missing}")
  lengths, terminated, weights = (np.asarray(arrays[key]) for key in _INDEX_KEYS)
  num = lengths.shape[0] if lengths.ndim == 1 else -1
  for key, x, kinds in zip(_INDEX_KEYS, (lengths, terminated, weights), ("iu", "b", "f")):
    if x.shape != (num,) or x.dtype.kind not in kinds:
      raise ValueError(f"replay buffer array {key!r} has shape {x.shape} and dtype "
                       f"{x.dtype}; expected [T] ({kinds} kind) with T = len(lengths)")
  if num and (lengths.min() < 1 or not np.isfinite(weights).all() or weights.min() < 0):
    raise ValueError("replay buffer arrays need lengths >= 1 and finite weights >= 0")
  step_keys = sorted(names - set(_INDEX_KEYS))
  optional = sorted(set(step_keys) & set(_OPTIONAL_STEP_KEYS))
  expected = sorted(_STEP_KEYS + tuple(optional)) if num else []
  if step_keys != expected:
    raise ValueError(f"replay buffer arrays hold step fields {step_keys} for {num} "
                     f"trajectories; expected {expected}")
  if not num:
    return lengths, terminated, weights, None
  steps = Transition(**{key[5:]: np.asarray(arrays[key]) for key in step_keys})
  total = int(lengths.sum())
  for key in step_keys:
    x = getattr(steps, key[5:])
    dtype = obs_dtype if key == "step_obs" else _DTYPES.get(key[5:])
    if key == "step_a" and x.dtype == np.float32 and x.ndim > 1:
      dtype = np.float32
    if x.ndim < 1 or x.shape[0] != total:
      raise ValueError(f"replay buffer array {key!r} has shape {x.shape}; expected "
                       f"{total} steps (the sum of lengths) first")
    if (x.dtype != dtype) if dtype is not None else x.dtype.kind not in "biuf":
      raise ValueError(f"replay buffer array {key!r} has dtype {x.dtype}; expected "
                       f"{dtype or 'a boolean, integer or float dtype'}")
  return lengths, terminated, weights, steps


def _check_restored_bounds(bounds, lengths, step_bytes: int):
  capacity, max_transitions, max_bytes = bounds
  total = int(lengths.sum())
  size = total * step_bytes
  if ((capacity is not None and len(lengths) > capacity)
      or (max_transitions is not None and total > max_transitions)
      or (max_bytes is not None and size > max_bytes)):
    raise ValueError(
        f"replay buffer state holds {len(lengths)} trajectories, {total} steps and "
        f"{size} bytes, beyond its bounds capacity={capacity}, "
        f"max_transitions={max_transitions}, max_bytes={max_bytes}")
