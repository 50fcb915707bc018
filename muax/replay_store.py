"""The storage under the replay buffers: a ring of steps per field, the index
of stored trajectories, window gathering, and the checks of saved states.

`muax.replay_buffer`'s classes hold one ring and one `TrajectoryIndex`; the
functions here are pure NumPy over them.
"""
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import numpy as np

from muax import checks
from muax.transition import EXTRA_FIELDS, FIELDS, Transition

__all__ = [
    "DTYPES", "INDEX_KEYS", "META_KEYS", "OPTIONAL_STEP_KEYS", "PRIORITY_BYTES",
    "PRIORITY_DTYPE", "STATE_FORMAT", "STATE_VERSION", "STEP_KEYS", "TrajectoryIndex",
    "absorb", "can_sample", "cast_obs", "check_bootstrap", "check_bounds", "check_compatible",
    "check_obs_dtype", "check_restored_bounds", "copy_from_ring", "gather_windows",
    "map_steps", "moved_column", "parse_arrays", "parse_meta", "read_ring", "sample_sizes",
    "stack_steps", "step_bytes", "to_numpy", "unflatten", "write_ring",
]

DTYPES = {"a": np.int32, "r": np.float32, "done": np.bool_, "Rn": np.float32,
           "v": np.float32, "pi": np.float32, "w": np.float32, "mask": np.bool_,
           "candidates": np.float32}
STATE_FORMAT = "muax.TrajectoryReplayBuffer"
STATE_VERSION = 1
PRIORITY_DTYPE = np.float64
PRIORITY_BYTES = np.dtype(PRIORITY_DTYPE).itemsize
META_KEYS = ("format", "version", "capacity", "max_transitions", "max_bytes",
              "obs_dtype", "rng")
INDEX_KEYS = ("lengths", "terminated", "weights")
STEP_KEYS = tuple(f"step_{name}" for name in FIELDS)
OPTIONAL_STEP_KEYS = tuple(f"step_{name}" for name in EXTRA_FIELDS)


class TrajectoryIndex:
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

  def append(self, start: int, length: int, terminated: bool, weight: float) -> None:
    if self._hi == len(self._columns[0]):
      live = len(self)
      size = max(16, 2 * live)
      self._columns = tuple(moved_column(c, self._lo, self._hi, size) for c in self._columns)
      self._lo, self._hi = 0, live
    for column, value in zip(self._columns, (start, length, terminated, weight)):
      column[self._hi] = value
    self._hi += 1

  def popleft(self) -> int:
    """Forgets the oldest trajectory; returns its length."""
    length = int(self._columns[1][self._lo])
    self._lo += 1
    return length

  def columns(self) -> Tuple[np.ndarray, ...]:
    """`(starts, lengths, terminated, weights)` views `[T]`, oldest first."""
    return tuple(c[self._lo:self._hi] for c in self._columns)

  def rebase(self, head: int, ring_size: int) -> None:
    """Moves the starts to a ring unrolled from `head` to position 0."""
    starts = self._columns[0][self._lo:self._hi]
    starts[:] = (starts - head) % ring_size


def gather_windows(flat: Transition, offsets: np.ndarray, lengths: np.ndarray,
                   terminated: np.ndarray, k_steps: int, rng: np.random.Generator,
                   starts: Optional[np.ndarray] = None,
                   bootstrap: Optional[Tuple[int, float]] = None) -> Transition:
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
  window = map_steps(lambda field: np.take(field, gather, axis=0, mode="wrap"), flat)
  if not inside.all():
    window = absorb(window, inside, rng)
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


def sample_sizes(batch_size: Optional[int], num_trajectory: Optional[int], k_steps: int,
                 sample_per_trajectory: int, num_batches: Optional[int]) -> Tuple[int, int, int]:
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


def unflatten(windows: Transition, rows: int, batch: int,
              num_batches: Optional[int]) -> Transition:
  """`[U*B, ...]` windows as `[U, B, ...]` (as they are without `num_batches`)."""
  if num_batches is None:
    return windows
  return map_steps(lambda x: x.reshape((rows, batch) + x.shape[1:]), windows)


def check_bootstrap(
    bootstrap: Optional[Tuple[int, float]]) -> Optional[Tuple[int, float]]:
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


def absorb(window: Transition, inside: np.ndarray, rng: np.random.Generator) -> Transition:
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


def can_sample(lengths: np.ndarray, terminated: np.ndarray, k_steps: int) -> np.ndarray:
  return terminated | (lengths >= k_steps)


def to_numpy(batched: Transition, obs_dtype: Optional[np.dtype] = None) -> Transition:
  """`[1, T, ...]` fields to `[T, ...]` numpy arrays with fixed dtypes."""
  fields = {}
  for name, value in batched.fields().items():
    array = np.asarray(value)[0]
    if name == "obs" and obs_dtype is not None:
      fields[name] = cast_obs(array, obs_dtype)
      continue
    dtype = DTYPES.get(name, np.float32 if array.dtype.kind == "f" else array.dtype)
    if name == "a" and array.dtype.kind == "f" and array.ndim > 1:
      dtype = np.float32  # continuous action vectors `[T, D]`
    fields[name] = array.astype(dtype, copy=False)
  return Transition(**fields)


def cast_obs(obs: np.ndarray, dtype: np.dtype) -> np.ndarray:
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


def stack_steps(transitions: Sequence[Transition]) -> Transition:
  """Stacks single-step transitions into fields shaped `[1, T, ...]`."""
  names = list(transitions[0].fields())
  for i, t in enumerate(transitions):
    if list(t.fields()) != names:
      raise ValueError(f"transition {i} of the trajectory has fields {list(t.fields())}, "
                       f"but the first has {names}: every step must carry the same "
                       "optional fields (mask, candidates)")
  return Transition(**{name: np.stack([np.asarray(getattr(t, name)) for t in transitions])[None]
                       for name in names})


def map_steps(fn: Callable[[np.ndarray], np.ndarray], steps: Transition) -> Transition:
  """A Transition of `fn(field)` for every present field."""
  return Transition(**{name: fn(x) for name, x in steps.fields().items()})


def step_bytes(steps: Transition) -> int:
  """Bytes of one step over all fields of `[N, ...]` arrays."""
  return sum(x.itemsize * int(np.prod(x.shape[1:], dtype=np.int64))
             for x in steps.fields().values())


def write_ring(store: Transition, start: int, steps: Transition) -> None:
  """Writes `[L, ...]` steps into the ring from `start`, wrapping at its end."""
  size = len(store.a)
  first = min(len(steps.a), size - start)
  for name, new in steps.fields().items():
    field = getattr(store, name)
    field[start:start + first] = new[:first]
    field[:len(new) - first] = new[first:]


def read_ring(field: np.ndarray, head: int, count: int) -> np.ndarray:
  """A contiguous copy of the `count` ring entries from `head`."""
  out = np.empty((count,) + field.shape[1:], field.dtype)
  copy_from_ring(out, field, head, count)
  return out


def copy_from_ring(out: np.ndarray, field: np.ndarray, head: int, count: int) -> None:
  first = min(count, len(field) - head)
  out[:first] = field[head:head + first]
  out[first:count] = field[:count - first]


def moved_column(column: np.ndarray, lo: int, hi: int, size: int) -> np.ndarray:
  """`column[lo:hi]` at the front of a new array of `size` entries."""
  out = np.empty(size, column.dtype)
  out[:hi - lo] = column[lo:hi]
  return out


def check_compatible(reference: Transition, steps: Transition) -> None:
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


def check_bounds(capacity: Optional[int], max_transitions: Optional[int],
                 max_bytes: Optional[int]) -> Tuple[Optional[int], Optional[int], Optional[int]]:
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


def check_obs_dtype(obs_dtype: Any) -> Optional[np.dtype]:
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


def parse_meta(meta: dict) -> Tuple[Tuple[Optional[int], Optional[int], Optional[int]],
                                    Optional[np.dtype], np.random.Generator]:
  """`(bounds, obs_dtype, generator)` from a `state` meta dict."""
  if not isinstance(meta, dict):
    raise ValueError(f"replay buffer meta must be a dict, got {type(meta).__name__}")
  missing = [key for key in META_KEYS if key not in meta]
  if missing:
    raise ValueError(f"replay buffer meta lacks keys {missing}")
  if meta["format"] != STATE_FORMAT or meta["version"] != STATE_VERSION:
    raise ValueError(f"replay buffer meta has format={meta['format']!r} version="
                     f"{meta['version']!r}; expected {STATE_FORMAT!r} version "
                     f"{STATE_VERSION}")
  bounds = check_bounds(meta["capacity"], meta["max_transitions"], meta["max_bytes"])
  obs_dtype = check_obs_dtype(meta["obs_dtype"])
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


def parse_arrays(arrays: Mapping[str, Any], obs_dtype: Optional[np.dtype]
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[Transition]]:
  """`(lengths, terminated, weights, steps or None)` from `state` arrays."""
  names = set(arrays.keys())
  missing = [key for key in INDEX_KEYS if key not in names]
  if missing:
    raise ValueError(f"replay buffer arrays lack {missing}")
  lengths, terminated, weights = (np.asarray(arrays[key]) for key in INDEX_KEYS)
  num = lengths.shape[0] if lengths.ndim == 1 else -1
  for key, x, kinds in zip(INDEX_KEYS, (lengths, terminated, weights), ("iu", "b", "f")):
    if x.shape != (num,) or x.dtype.kind not in kinds:
      raise ValueError(f"replay buffer array {key!r} has shape {x.shape} and dtype "
                       f"{x.dtype}; expected [T] ({kinds} kind) with T = len(lengths)")
  if num and (lengths.min() < 1 or not np.isfinite(weights).all() or weights.min() < 0):
    raise ValueError("replay buffer arrays need lengths >= 1 and finite weights >= 0")
  step_keys = sorted(names - set(INDEX_KEYS))
  optional = sorted(set(step_keys) & set(OPTIONAL_STEP_KEYS))
  expected = sorted(STEP_KEYS + tuple(optional)) if num else []
  if step_keys != expected:
    raise ValueError(f"replay buffer arrays hold step fields {step_keys} for {num} "
                     f"trajectories; expected {expected}")
  if not num:
    return lengths, terminated, weights, None
  steps = Transition(**{key[5:]: np.asarray(arrays[key]) for key in step_keys})
  total = int(lengths.sum())
  for key in step_keys:
    x = getattr(steps, key[5:])
    dtype = obs_dtype if key == "step_obs" else DTYPES.get(key[5:])
    if key == "step_a" and x.dtype == np.float32 and x.ndim > 1:
      dtype = np.float32
    if x.ndim < 1 or x.shape[0] != total:
      raise ValueError(f"replay buffer array {key!r} has shape {x.shape}; expected "
                       f"{total} steps (the sum of lengths) first")
    if (x.dtype != dtype) if dtype is not None else x.dtype.kind not in "biuf":
      raise ValueError(f"replay buffer array {key!r} has dtype {x.dtype}; expected "
                       f"{dtype or 'a boolean, integer or float dtype'}")
  return lengths, terminated, weights, steps


def check_restored_bounds(bounds: Tuple[Optional[int], Optional[int], Optional[int]],
                          lengths: np.ndarray, step_bytes: int) -> None:
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
