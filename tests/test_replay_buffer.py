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
