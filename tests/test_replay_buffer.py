import random

import numpy as np
import pytest

import muax
from muax.replay_buffer import Trajectory


def make_trajectory(length, terminated=True, start=0, num_actions=2):
  """Steps carry their index in obs, a, r so windows can be checked."""
  tracer = muax.NStep(1, 1.)
  traj = Trajectory()
  for t in range(length):
    last = t == length - 1
    tracer.add(np.array([start + t, 0.], np.float32), (start + t) % num_actions,
               float(start + t), last and terminated, v=0.,
               pi=np.full(num_actions, 1. / num_actions),
               truncated=last and not terminated, bootstrap_value=0.)
    while tracer:
      traj.add(tracer.pop())
  traj.finalize()
  return traj


def test_trajectory_batched_shapes():
  traj = make_trajectory(7)
  b = traj.batched_transitions
  assert b.obs.shape == (1, 7, 2) and b.a.shape == (1, 7) and b.pi.shape == (1, 7, 2)
  assert len(traj) == 7
  windows = traj.sample(num_samples=3, k_steps=4)
  assert len(windows) == 3 and windows[0].obs.shape == (1, 4, 2)


def test_exact_k_trajectory_is_sampled_old_defect_9():
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=0)
  for i in range(3):
    buffer.add(make_trajectory(5, terminated=False, start=100 * i))
  batch = buffer.sample(batch_size=16, k_steps=5)
  assert batch.obs.shape == (16, 5, 2)
  # Unterminated trajectories of exactly K steps give exactly their full window.
  np.testing.assert_array_equal(batch.obs[:, :, 0] % 100, np.tile(np.arange(5), (16, 1)))


def test_windows_are_contiguous_and_within_unterminated_trajectory():
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=1)
  buffer.add(make_trajectory(20, terminated=False))
  batch = buffer.sample(batch_size=200, k_steps=6)
  idx = batch.obs[:, :, 0]
  np.testing.assert_array_equal(np.diff(idx, axis=1), 1.)
  assert idx.max() <= 19 and set(idx[:, 0].astype(int)) == set(range(15))
  np.testing.assert_array_equal(batch.r, idx)
  assert not batch.done.any()


def test_terminated_trajectory_pads_with_absorbing_states():
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=2)
  buffer.add(make_trajectory(3, terminated=True))
  batch = buffer.sample(batch_size=300, k_steps=5)
  starts = batch.obs[:, 0, 0].astype(int)
  assert set(starts) == {0, 1, 2}  # every step can start a window
  for row, s in zip(range(len(starts)), starts):
    real = 3 - s
    np.testing.assert_array_equal(batch.r[row, :real], np.arange(s, 3))
    assert (batch.r[row, real:] == 0).all() and (batch.Rn[row, real:] == 0).all()
    assert batch.done[row, real:].all()
    np.testing.assert_allclose(batch.pi[row, real:], 0.5)


def test_ring_evicts_oldest():
  buffer = muax.TrajectoryReplayBuffer(3, random_seed=0)
  for i in range(5):
    buffer.add(make_trajectory(4, start=100 * i))
  assert len(buffer) == 3 and buffer.capacity == 3
  starts = set((buffer.sample(batch_size=500, k_steps=1).obs[:, 0, 0] // 100).astype(int))
  assert starts == {2, 3, 4}
  buffer.clear()
  assert len(buffer) == 0


def test_num_trajectory_batch_size():
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=0)
  for i in range(4):
    buffer.add(make_trajectory(30, start=100 * i))
  batch = buffer.sample(num_trajectory=5, sample_per_trajectory=3, k_steps=2)
  assert batch.a.shape == (15, 2)
  traj_of = (batch.obs[:, 0, 0] // 100).reshape(5, 3)
  assert (traj_of == traj_of[:, :1]).all()  # each group from one trajectory
  assert buffer.sample(batch_size=7, sample_per_trajectory=3, k_steps=2).a.shape == (7, 2)


def test_weights_bias_trajectory_choice():
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=0)
  buffer.add(make_trajectory(4, start=0), w=1.)
  buffer.add(make_trajectory(4, start=100), w=3.)
  share = (buffer.sample(batch_size=4000, k_steps=1).obs[:, 0, 0] >= 100).mean()
  assert share == pytest.approx(0.75, abs=0.03)


def test_seeded_and_independent_of_global_random_old_defect_8():
  def draw(seed):
    buffer = muax.TrajectoryReplayBuffer(10, random_seed=seed)
    for i in range(3):
      buffer.add(make_trajectory(10, start=100 * i))
    return buffer.sample(batch_size=8, k_steps=3).obs

  random.seed(123)
  state = random.getstate()
  first = draw(7)
  assert random.getstate() == state  # the global generator was not touched
  random.seed(999)
  np.testing.assert_array_equal(first, draw(7))
  assert not np.array_equal(first, draw(8))


def test_matches_python_reference_distribution():
  # Plain-Python reference: choose a trajectory, then a uniform start.
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=3)
  buffer.add(make_trajectory(4, terminated=False, start=0))
  buffer.add(make_trajectory(8, terminated=False, start=100))
  k = 3
  starts = buffer.sample(batch_size=20000, k_steps=k).obs[:, 0, 0].astype(int)
  expected = {s: 0.5 / 2 for s in range(2)} | {100 + s: 0.5 / 6 for s in range(6)}
  for start, p in expected.items():
    assert (starts == start).mean() == pytest.approx(p, abs=0.015)


def test_errors():
  buffer = muax.TrajectoryReplayBuffer(4)
  with pytest.raises(ValueError, match="empty replay buffer"):
    buffer.sample(batch_size=2, k_steps=2)
  buffer.add(make_trajectory(3, terminated=False))
  with pytest.raises(ValueError, match="k_steps=5"):
    buffer.sample(batch_size=2, k_steps=5)
  with pytest.raises(ValueError, match="k_steps must be a positive integer"):
    buffer.sample(batch_size=2, k_steps=0)
  with pytest.raises(ValueError, match="batch_size"):
    buffer.sample(batch_size=0)
  with pytest.raises(ValueError, match="capacity"):
    muax.TrajectoryReplayBuffer(0)
  with pytest.raises(ValueError, match="empty Trajectory"):
    buffer.add(Trajectory())
  with pytest.raises(ValueError, match="weight"):
    buffer.add(make_trajectory(3), w=float("nan"))
  with pytest.raises(ValueError, match="per-step shape"):
    buffer.add(make_trajectory(3, num_actions=3))


# --- Bounds, obs_dtype, ring storage and resume ----------------------------

def make_random_trajectory(traj_id, length, terminated, rng, num_actions=3):
  """obs[0] = 1000 * traj_id + t tags every step; the other fields are random."""
  traj = Trajectory()
  for t in range(length):
    pi = rng.dirichlet(np.ones(num_actions)).astype(np.float32)
    traj.add(muax.Transition(
        obs=np.array([1000 * traj_id + t, rng.normal()], np.float32),
        a=int(rng.integers(num_actions)), r=float(rng.normal()),
        done=bool(t == length - 1 and terminated), Rn=float(rng.normal()),
        v=float(rng.normal()), pi=pi, w=float(rng.random())))
  traj.finalize()
  return traj


_SAMPLE_CALLS = (dict(batch_size=16, k_steps=3),
                 dict(num_trajectory=4, sample_per_trajectory=3, k_steps=5),
                 dict(batch_size=7, sample_per_trajectory=2, k_steps=8, num_batches=3),
                 dict(num_trajectory=5, k_steps=1, num_batches=2))


def run_scenario(buffer, seed=0, num_adds=14, max_length=12):
  """Adds trajectories (some terminated, some of weight 0), sampling after each."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(num_adds):
    length = int(rng.integers(1, max_length + 1))
    terminated = bool(rng.random() < 0.6) or length < 8
    w = 0. if i % 5 == 3 else float(rng.random() * 2)
    buffer.add(make_random_trajectory(i, length, terminated, rng), w=w)
    out.append(buffer.sample(**_SAMPLE_CALLS[i % len(_SAMPLE_CALLS)]))
  return out


class ReferenceBuffer:
  """Plain-Python model of the buffer: a list of trajectories, the same draws.

  It makes the same calls on the same numpy Generator as the buffer, in the
  same order: `choice` of the trajectories, `random` for the window starts,
  `integers` for the absorbing actions.
  """

  def __init__(self, capacity=None, random_seed=None, max_transitions=None,
               max_bytes=None):
    self.bounds = (capacity, max_transitions, max_bytes)
    self.rng = np.random.default_rng(random_seed)
    self.items = []  # (fields dict of [T, ...] arrays, terminated, w)

  def add(self, trajectory, w=1.):
    b = trajectory.batched_transitions
    fields = {name: np.asarray(x)[0] for name, x in zip(muax.transition.FIELDS, b)}
    fields = {name: x.astype(np.float32) if x.dtype.kind == "f" else x
              for name, x in fields.items()}
    fields["a"] = fields["a"].astype(np.int32)
    self.items.append((fields, bool(fields["done"][-1]), float(w)))
    capacity, max_transitions, max_bytes = self.bounds
    while True:
      steps = sum(len(f["a"]) for f, _, _ in self.items)
      step_bytes = sum(x[0].nbytes for x in self.items[0][0].values())
      if not ((capacity and len(self.items) > capacity)
              or (max_transitions and steps > max_transitions)
              or (max_bytes and steps * step_bytes > max_bytes)):
        break
      self.items.pop(0)

  def sample(self, batch_size=32, num_trajectory=None, k_steps=5,
             sample_per_trajectory=1, num_batches=None):
    if num_trajectory is None:
      batch, num_trajectory = batch_size, -(-batch_size // sample_per_trajectory)
    else:
      batch = num_trajectory * sample_per_trajectory
    lengths = [len(f["a"]) for f, _, _ in self.items]
    eligible = np.array([t or n >= k_steps for (_, t, _), n in zip(self.items, lengths)])
    p = np.where(eligible, [w for _, _, w in self.items], 0.)
    p = p / p.sum() if p.sum() > 0 else eligible / eligible.sum()
    rows = num_batches or 1
    chosen = self.rng.choice(len(self.items), size=(rows, num_trajectory), p=p)
    chosen = [c for row in chosen for c in
              [c for c in row for _ in range(sample_per_trajectory)][:batch]]
    u = self.rng.random(len(chosen))
    windows, past = [], []
    for c, u_i in zip(chosen, u):
      fields, terminated, _ = self.items[c]
      n = lengths[c]
      start = int(np.floor(u_i * (n if terminated else n - k_steps + 1)))
      windows.append([{k: x[min(start + j, n - 1)] for k, x in fields.items()}
                      for j in range(k_steps)])
      past.append([start + j >= n for j in range(k_steps)])
    if any(map(any, past)):
      num_actions = len(windows[0][0]["pi"])
      random_a = self.rng.integers(0, num_actions, size=(len(chosen), k_steps),
                                   dtype=np.int32)
      for i, row in enumerate(windows):
        for j, step in enumerate(row):
          if past[i][j]:
            step.update(r=0., Rn=0., v=0., done=True, a=random_a[i, j],
                        pi=np.full(num_actions, 1. / num_actions))
    out = {k: np.array([[step[k] for step in row] for row in windows])
           for k in muax.transition.FIELDS}
    out = {k: x.reshape((rows, batch) + x.shape[1:]) if num_batches else x
           for k, x in out.items()}
    return muax.Transition(**out)


def assert_same_batches(batches, expected):
  assert len(batches) == len(expected)
  for got, want in zip(batches, expected):
    for name, x, y in zip(muax.transition.FIELDS, got, want):
      np.testing.assert_array_equal(x, y.astype(x.dtype), err_msg=name)


@pytest.mark.parametrize("bounds", [
    dict(capacity=6), dict(capacity=3), dict(capacity=500),
    dict(max_transitions=25),  # small: the ring wraps around often
    dict(max_transitions=12),  # the longest trajectory fills it alone
    dict(max_bytes=1500), dict(capacity=4, max_transitions=30, max_bytes=2000)])
def test_samples_match_plain_python_reference(bounds):
  for seed in range(2):
    reference = ReferenceBuffer(random_seed=seed, **bounds)
    expected = run_scenario(reference, seed=seed, num_adds=30)
    buffer = muax.TrajectoryReplayBuffer(random_seed=seed, **bounds)
    assert_same_batches(run_scenario(buffer, seed=seed, num_adds=30), expected)
    assert len(buffer) == len(reference.items)
    assert buffer.num_transitions() == sum(len(f["a"]) for f, _, _ in reference.items)


@pytest.mark.parametrize("capacity, seed, data_seed, digest", [
    (6, 0, 0, "a8cf9954e671d02376739becf0888484aa9a10fc4d17f7d959f6b46d0318df77"),
    (3, 5, 1, "fe6afbf7f5637eca6055afed9ff8038b6c381fb939401bc6968e33848013b5b1"),
    (500, 0, 2, "30cade0790ef1663f0a3c96ee5b3ac8a9590140dd0b4940fb8c554247f28ec20")])
def test_samples_pinned_to_previous_implementation(capacity, seed, data_seed, digest):
  # Digests of every batch of `run_scenario`, computed with the implementation
  # that re-concatenated the buffer after each add (before the ring storage),
  # numpy 2.4: the same seed and calls must keep giving the same samples.
  import hashlib
  batches = run_scenario(muax.TrajectoryReplayBuffer(capacity, random_seed=seed),
                         seed=data_seed)
  h = hashlib.sha256()
  for batch in batches:
    for field in batch:
      h.update(np.ascontiguousarray(field).tobytes())
  assert h.hexdigest() == digest


def test_bounds_are_validated():
  with pytest.raises(ValueError, match="needs a bound"):
    muax.TrajectoryReplayBuffer()
  with pytest.raises(ValueError, match="max_transitions=0"):
    muax.TrajectoryReplayBuffer(max_transitions=0)
  with pytest.raises(ValueError, match="max_bytes=-5"):
    muax.TrajectoryReplayBuffer(10, max_bytes=-5)
  with pytest.raises(ValueError, match="capacity=2.5"):
    muax.TrajectoryReplayBuffer(2.5)
  with pytest.raises(ValueError, match="obs_dtype"):
    muax.TrajectoryReplayBuffer(10, obs_dtype=object)
  buffer = muax.TrajectoryReplayBuffer(max_bytes=10_000, obs_dtype="uint8")
  assert (buffer.capacity, buffer.max_transitions, buffer.max_bytes) == (None, None, 10_000)
  assert buffer.obs_dtype == np.uint8
  assert muax.TrajectoryReplayBuffer(500, random_seed=0).obs_dtype is None


def test_max_transitions_evicts_oldest_and_counts_steps():
  buffer = muax.TrajectoryReplayBuffer(max_transitions=10, random_seed=0)
  for i, length in enumerate([4, 3, 2, 5]):
    buffer.add(make_trajectory(length, start=100 * i))
  # 4 + 3 + 2 = 9 fit; adding 5 evicts the 4 (3 + 2 + 5 = 10).
  assert len(buffer) == 3 and buffer.num_transitions() == 10
  starts = set((buffer.sample(batch_size=300, k_steps=1).obs[:, 0, 0] // 100).astype(int))
  assert starts == {1, 2, 3}
  # One step: obs [2] float32, a int32, r, Rn, v, w float32, done bool, pi [2] float32.
  assert buffer.nbytes() == 10 * (8 + 4 + 4 + 1 + 4 + 4 + 8 + 4)
  buffer.add(make_trajectory(9, start=400))  # evicts all three others
  assert len(buffer) == 1 and buffer.num_transitions() == 9
  assert set(buffer.sample(batch_size=50, k_steps=1).obs[:, 0, 0] // 100) == {4}


def test_max_bytes_evicts_oldest():
  step_bytes = 37
  buffer = muax.TrajectoryReplayBuffer(max_bytes=10 * step_bytes, random_seed=0)
  for i, length in enumerate([6, 4]):
    buffer.add(make_trajectory(length, start=100 * i))
  assert len(buffer) == 2 and buffer.nbytes() == 10 * step_bytes  # exactly the bound
  buffer.add(make_trajectory(1, start=200))
  assert len(buffer) == 2 and buffer.nbytes() == 5 * step_bytes


def test_trajectory_larger_than_a_bound_is_refused():
  buffer = muax.TrajectoryReplayBuffer(max_transitions=5)
  buffer.add(make_trajectory(3))
  with pytest.raises(ValueError, match="6 steps .* max_transitions=5"):
    buffer.add(make_trajectory(6))
  assert len(buffer) == 1 and buffer.num_transitions() == 3  # nothing stored or evicted
  buffer = muax.TrajectoryReplayBuffer(100, max_bytes=100)
  with pytest.raises(ValueError, match=r"3 steps takes 111 bytes \(37 per step\).*max_bytes=100"):
    buffer.add(make_trajectory(3))
  assert len(buffer) == 0 and buffer.nbytes() == 0


def test_capacity_only_behaves_as_before():
  buffer = muax.TrajectoryReplayBuffer(2)
  for length in (3, 50, 7):
    buffer.add(make_trajectory(length))
  assert len(buffer) == 2 and buffer.num_transitions() == 57


def test_default_obs_dtypes_unchanged():
  def sampled_obs(obs):
    traj = Trajectory()
    for o in obs:
      traj.add(muax.Transition(obs=o, a=0, done=True))
    buffer = muax.TrajectoryReplayBuffer(5, random_seed=0)
    buffer.add(traj)
    return buffer.sample(batch_size=2, k_steps=1).obs

  assert sampled_obs([np.zeros(3, np.float64)]).dtype == np.float32
  assert sampled_obs([np.zeros(3, np.uint8)]).dtype == np.uint8
  assert sampled_obs([np.zeros(3, np.int64)]).dtype == np.int64


def test_mixed_obs_dtypes_are_promoted_as_before():
  buffer = muax.TrajectoryReplayBuffer(5, random_seed=0)
  for obs in (np.array([3, 4], np.int64), np.array([.5, 1.5], np.float32)):
    traj = Trajectory()
    traj.add(muax.Transition(obs=obs, a=0, done=True))
    buffer.add(traj)
  obs = buffer.sample(batch_size=50, k_steps=1).obs[:, 0]
  assert obs.dtype == np.float64
  assert {tuple(o) for o in obs} == {(3., 4.), (.5, 1.5)}


def image_trajectory(frames):
  traj = Trajectory()
  for frame in frames:
    traj.add(muax.Transition(obs=frame, a=0, pi=np.array([.5, .5]), done=False))
  traj.finalize()
  return traj


def test_obs_dtype_uint8_stores_and_samples_uint8():
  frames = np.arange(2 * 4 * 4 * 3, dtype=np.float64).reshape(2, 4, 4, 3)
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=0, obs_dtype=np.uint8)
  buffer.add(image_trajectory(frames))
  batch = buffer.sample(batch_size=4, k_steps=2)
  assert batch.obs.dtype == np.uint8 and batch.obs.shape == (4, 2, 4, 4, 3)
  np.testing.assert_array_equal(batch.obs[0], frames)
  # A uint8 step of 48 bytes instead of 192 as float32.
  step = 48 + 4 + 4 + 1 + 4 + 4 + 8 + 4
  assert buffer.nbytes() == 2 * step


@pytest.mark.parametrize("value, message", [
    (0.5, "non-integer values"), (256., r"values in \[0.0, 256.0\], outside uint8's \[0, 255\]"),
    (-1., "outside uint8"), (np.nan, "NaN"), (np.inf, "infinite")])
def test_obs_dtype_uint8_refuses_what_it_cannot_represent(value, message):
  buffer = muax.TrajectoryReplayBuffer(10, obs_dtype=np.uint8)
  frames = np.zeros((2, 3))
  frames[1, 2] = value
  with pytest.raises(ValueError, match=f"obs_dtype=uint8 cannot represent.*{message}"):
    buffer.add(image_trajectory(frames))
  assert len(buffer) == 0


def test_obs_dtype_integer_checks_integer_input_range():
  buffer = muax.TrajectoryReplayBuffer(10, obs_dtype="int8")
  with pytest.raises(ValueError, match="outside int8"):
    buffer.add(image_trajectory(np.array([[1, 300]], np.int64)))
  buffer.add(image_trajectory(np.array([[-128, 127]], np.int64)))
  assert buffer.sample(batch_size=1, k_steps=1).obs.dtype == np.int8


def test_obs_dtype_float16():
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=0, obs_dtype=np.float16)
  buffer.add(image_trajectory(np.array([[0.1, -2.5, 1000.]])))
  obs = buffer.sample(batch_size=1, k_steps=1).obs
  assert obs.dtype == np.float16
  np.testing.assert_array_equal(obs[0, 0], np.array([0.1, -2.5, 1000.], np.float16))
  with pytest.raises(ValueError, match="overflow float16"):
    buffer.add(image_trajectory(np.array([[1e6, 0.]])))


def round_trip(buffer, tmp_path):
  """`state` through JSON and an .npz file read without pickle."""
  import json
  meta, arrays = buffer.state()
  for name, x in arrays.items():
    assert x.dtype != object, name
  np.savez(tmp_path / "buffer.npz", **arrays)
  with np.load(tmp_path / "buffer.npz", allow_pickle=False) as loaded:
    arrays = {name: loaded[name] for name in loaded.files}
  return json.loads(json.dumps(meta)), arrays


def assert_same_state(state, expected):
  assert state[0] == expected[0]
  assert set(state[1]) == set(expected[1])
  for name, x in expected[1].items():
    assert state[1][name].dtype == x.dtype, name
    np.testing.assert_array_equal(state[1][name], x, err_msg=name)


@pytest.mark.parametrize("bounds", [
    dict(capacity=5), dict(max_transitions=25), dict(max_bytes=2000, obs_dtype=np.float16)])
def test_state_restore_round_trip_continues_identically(bounds, tmp_path):
  original = muax.TrajectoryReplayBuffer(random_seed=3, **bounds)
  run_scenario(original, seed=0, num_adds=12)
  meta, arrays = round_trip(original, tmp_path)
  restored = muax.TrajectoryReplayBuffer(1000, random_seed=99)  # other bounds and seed
  restored.restore(meta, arrays)
  assert (restored.capacity, restored.max_transitions, restored.max_bytes) == (
      original.capacity, original.max_transitions, original.max_bytes)
  assert restored.obs_dtype == original.obs_dtype
  assert len(restored) == len(original)
  assert restored.num_transitions() == original.num_transitions()
  assert restored.nbytes() == original.nbytes()
  assert_same_state(restored.state(), original.state())
  # The same adds and samples from here on give the same batches.
  assert_same_batches(run_scenario(restored, seed=1, num_adds=15),
                      run_scenario(original, seed=1, num_adds=15))


def test_state_restore_empty_buffer(tmp_path):
  original = muax.TrajectoryReplayBuffer(7, random_seed=1)
  meta, arrays = round_trip(original, tmp_path)
  assert set(arrays) == {"lengths", "terminated", "weights"}
  restored = muax.TrajectoryReplayBuffer(max_transitions=3)
  restored.add(make_trajectory(2))
  restored.restore(meta, arrays)
  assert len(restored) == 0 and restored.capacity == 7 and restored.max_transitions is None
  assert_same_batches(run_scenario(restored, seed=2), run_scenario(original, seed=2))


def test_restore_refuses_states_that_do_not_fit():
  original = muax.TrajectoryReplayBuffer(5, random_seed=0)
  run_scenario(original, num_adds=4)
  meta, arrays = original.state()

  def refused(message, meta=meta, arrays=arrays):
    target = muax.TrajectoryReplayBuffer(9, random_seed=0)
    target.add(make_trajectory(3))
    before = target.state()
    with pytest.raises(ValueError, match=message):
      target.restore(meta, arrays)
    after = target.state()  # the buffer was left as it was
    assert before[0] == after[0]
    for name in before[1]:
      np.testing.assert_array_equal(before[1][name], after[1][name])

  without = lambda d, key: {k: v for k, v in d.items() if k != key}  # noqa: E731
  refused(r"lacks keys \['rng'\]", meta=without(meta, "rng"))
  refused("format", meta=dict(meta, format="something else"))
  refused("capacity must be a positive integer", meta=dict(meta, capacity=0))
  refused("names no numpy bit generator", meta=dict(meta, rng={"bit_generator": "os"}))
  refused("not a valid PCG64 state", meta=dict(meta, rng=dict(meta["rng"], state=None)))
  refused(r"lack \['weights'\]", arrays=without(arrays, "weights"))
  refused("'terminated' has shape", arrays=dict(arrays, terminated=arrays["terminated"][:-1]))
  refused("step fields", arrays=without(arrays, "step_pi"))
  refused("step fields", arrays=dict(arrays, step_extra=arrays["step_w"]))
  refused("'step_obs' has shape", arrays=dict(arrays, step_obs=arrays["step_obs"][1:]))
  refused("'step_a' has dtype", arrays=dict(arrays, step_a=arrays["step_a"].astype(float)))
  refused("'step_obs' has dtype float32; expected uint8", meta=dict(meta, obs_dtype="uint8"))
  refused("lengths >= 1", arrays=dict(arrays, lengths=np.zeros_like(arrays["lengths"])))
  refused("beyond its bounds", meta=dict(meta, capacity=1))


def test_restore_reads_an_open_npz_file(tmp_path):
  original = muax.TrajectoryReplayBuffer(max_transitions=40, random_seed=4,
                                         obs_dtype=np.float16)
  run_scenario(original, num_adds=9)
  meta, arrays = original.state()
  np.savez(tmp_path / "buffer.npz", **arrays)
  restored = muax.TrajectoryReplayBuffer(1)
  with np.load(tmp_path / "buffer.npz", allow_pickle=False) as loaded:
    restored.restore(meta, loaded)
  assert_same_state(restored.state(), original.state())
