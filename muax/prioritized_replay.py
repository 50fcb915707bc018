"""`PrioritizedReplayBuffer`: windows drawn by priority (re-exported by
`muax.replay_buffer`)."""
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from muax import checks
from muax import replay_store
from muax.transition import Transition
from muax.uniform_replay import Trajectory
from muax.uniform_replay import TrajectoryReplayBuffer

__all__ = ["PrioritizedReplayBuffer"]


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
        check_per_settings(alpha, beta, beta_final, beta_steps, epsilon)
    self.batches_sampled = 0

  @property
  def current_beta(self) -> float:
    """The importance-sampling exponent the next batch gets."""
    progress = min(1., self.batches_sampled / self.beta_steps)
    return self.beta + (self.beta_final - self.beta) * progress

  def clear(self) -> None:
    super().clear()
    self._priority = None  # `[ring_size]` raw priorities, parallel to the ring
    self._max_priority = 1.
    self._added = 0  # steps ever added: ids are `_added - _count + offset`

  def add(self, trajectory: Trajectory, w: float = 1.) -> None:
    super().add(trajectory, w)
    length = len(trajectory)
    self._added += length
    new = (self._head + self._count - length + np.arange(length)) % len(self._priority)
    self._priority[new] = self._max_priority

  def _bytes_per_step(self, steps: Transition) -> int:
    # each step also holds its float64 priority
    return replay_store.step_bytes(steps) + replay_store.PRIORITY_BYTES

  def _reserve(self, needed: int, steps: Transition):
    old, head, count, store = self._priority, self._head, self._count, self._store
    super()._reserve(needed, steps)
    if self._store is not store or self._priority is None:
      priority = np.zeros(len(self._store.a), replay_store.PRIORITY_DTYPE)
      if old is not None:
        replay_store.copy_from_ring(priority, old, head, count)
      self._priority = priority

  def sample(self, batch_size: int = 32, num_trajectory: Optional[int] = None,
             k_steps: int = 5, sample_per_trajectory: int = 1, *,
             num_batches: Optional[int] = None,
             bootstrap: Optional[Tuple[int, float]] = None,
             return_ids: bool = False) -> Union[Transition, Tuple[Transition, np.ndarray]]:
    """Samples windows by priority; `batch.weight` holds their IS weights.

    Arguments as for `TrajectoryReplayBuffer.sample` (B is
    `num_trajectory * sample_per_trajectory` or `batch_size`, every window
    drawn independently by priority).

    Returns:
      the batch, or `(batch, ids)` with `return_ids`: ids `[B]` (`[U, B]`)
      of the first step of each window, for `update_priorities`.
    """
    batch, _, rows = replay_store.sample_sizes(batch_size, num_trajectory, k_steps,
                                   sample_per_trajectory, num_batches)
    bootstrap = replay_store.check_bootstrap(bootstrap)
    self._eligible(k_steps)  # clear errors for an empty or too-short buffer
    starts, lengths, terminated, _ = self._trajectories.columns()
    first = np.cumsum(lengths) - lengths  # each trajectory's first logical step
    owner = np.repeat(np.arange(len(lengths)), lengths)  # [N] trajectory of each step
    offset = np.arange(self._count) - first[owner]
    may_start = terminated[owner] | (offset <= lengths[owner] - k_steps)
    p = np.where(may_start, replay_store.read_ring(self._priority, self._head, self._count), 0.)
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
    windows = replay_store.gather_windows(self._store, starts[chosen], lengths[chosen],
                              terminated[chosen], k_steps, self._rng, starts=offset[picked],
                              bootstrap=bootstrap)
    windows = windows.replace(weight=np.repeat(weight.reshape(-1, 1), k_steps, axis=1))
    windows = replay_store.unflatten(windows, rows, batch, num_batches)
    if not return_ids:
      return windows
    ids = (self._added - self._count + picked).astype(np.int64)
    return windows, ids.reshape(rows, batch) if num_batches is not None else ids

  def update_priorities(self, ids: np.ndarray, priorities: np.ndarray) -> None:
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
    return replay_store.read_ring(self._priority, self._head, self._count)

  def state(self) -> Tuple[dict, Dict[str, np.ndarray]]:
    """`TrajectoryReplayBuffer.state` plus the priorities and their settings."""
    meta, arrays = super().state()
    meta["prioritized"] = {
        "alpha": self.alpha, "beta": self.beta, "beta_final": self.beta_final,
        "beta_steps": self.beta_steps, "epsilon": self.epsilon,
        "batches_sampled": self.batches_sampled, "max_priority": self._max_priority,
        "added": self._added}
    arrays["priorities"] = self.priorities()
    return meta, arrays

  def restore(self, meta: dict, arrays: Mapping[str, Any]) -> None:
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
      settings = check_per_settings(per["alpha"], per["beta"], per["beta_final"],
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


def check_per_settings(alpha: float, beta: float, beta_final: float, beta_steps: int,
                       epsilon: float) -> Tuple[float, float, float, int, float]:
  for name, value, low, high in (("alpha", alpha, 0., np.inf), ("beta", beta, 0., 1.),
                                 ("beta_final", beta_final, 0., 1.)):
    checks.number(name, value, low=low, high=high, what=f"a number in [{low:g}, {high:g}]",
                  not_a_number=ValueError)
  checks.positive_int("beta_steps", beta_steps)
  if not isinstance(epsilon, (int, float, np.number)) or not 0. < float(epsilon) < np.inf:
    raise ValueError(f"epsilon must be a number > 0, got epsilon={epsilon!r}")
  return float(alpha), float(beta), float(beta_final), int(beta_steps), float(epsilon)
