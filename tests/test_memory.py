"""Memory of the replay buffer: bounds hold after every add, RSS stays flat when full."""
import numpy as np
import pytest

import muax
from muax.replay_buffer import Trajectory

_STEP_BYTES = 16 + 4 + 4 + 1 + 4 + 4 + 8 + 4  # CartPole: obs [4] float32, pi [2]


def cartpole_like_trajectory(rng, length):
  """A trajectory of `length` steps shaped like CartPole's (obs [4], 2 actions)."""
  obs = rng.normal(size=(length, 4)).astype(np.float32)
  pi = rng.dirichlet(np.ones(2), size=length).astype(np.float32)
  traj = Trajectory()
  for t in range(length):
    traj.add(muax.Transition(obs=obs[t], a=t % 2, r=1., done=t == length - 1,
                             Rn=float(length - t), v=0.5, pi=pi[t], w=1.))
  traj.finalize()
  return traj


def rss_bytes():
  """Resident set size of this process from /proc/self/status, or None."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


@pytest.fixture(scope="module")
def pool():
  # Trajectories are re-added from a pool: the buffer copies what it stores.
  rng = np.random.default_rng(0)
  return [cartpole_like_trajectory(rng, int(rng.integers(10, 201))) for _ in range(64)]


@pytest.mark.parametrize("bounds", [
    dict(max_transitions=1000), dict(max_bytes=1000 * _STEP_BYTES),
    dict(capacity=12, max_transitions=1500, max_bytes=1200 * _STEP_BYTES)])
def test_bounds_hold_after_every_add(pool, bounds):
  buffer = muax.TrajectoryReplayBuffer(random_seed=0, **bounds)
  max_transitions = bounds.get("max_transitions", np.inf)
  max_bytes = bounds.get("max_bytes", np.inf)
  added = []
  order = np.random.default_rng(1).permutation(np.arange(300) % len(pool))
  for i in order:
    buffer.add(pool[i])
    added.append(len(pool[i]))
    assert buffer.num_transitions() <= max_transitions
    assert buffer.nbytes() <= max_bytes
    assert buffer.nbytes() == buffer.num_transitions() * _STEP_BYTES
    assert len(buffer) <= bounds.get("capacity", np.inf)
    # The newest trajectories are kept, as many as the bounds allow.
    kept = added[-len(buffer):]
    assert buffer.num_transitions() == sum(kept)
    if len(buffer) < len(added):
      one_more = added[-len(buffer) - 1:]
      assert (len(one_more) > bounds.get("capacity", np.inf)
              or sum(one_more) > max_transitions
              or sum(one_more) * _STEP_BYTES > max_bytes)
    # The storage itself stays within the step bound too.
    assert len(buffer._store.a) * _STEP_BYTES <= min(max_transitions * _STEP_BYTES, max_bytes)
  buffer.sample(num_trajectory=8, k_steps=10, sample_per_trajectory=4)


def test_rss_flat_once_full(pool):
  """RSS grows by less than 3% over 2000 adds and samples with the buffer full.

  The buffer holds 1.2M CartPole steps (54 MB) in a process of about 250 MB
  (JAX included). Measured growth is about 0.1%. Keeping one extra copy of the
  buffer per add fails at the first add; keeping a copy of every added
  trajectory (about 10 MB over the 2000 adds) fails too, at about 4%.
  """
  if rss_bytes() is None:
    pytest.skip("no VmRSS in /proc/self/status on this system")
  max_transitions = 1_200_000
  buffer = muax.TrajectoryReplayBuffer(max_transitions=max_transitions, random_seed=0)
  step = 0

  def add_and_sample():
    nonlocal step
    buffer.add(pool[step % len(pool)])
    step += 1
    return buffer.sample(num_trajectory=32, k_steps=10, sample_per_trajectory=10,
                         num_batches=50)

  # Filling is not measured, so it samples only now and then (sampling is most
  # of the time).
  while buffer.num_transitions() + 200 <= max_transitions:
    buffer.add(pool[step % len(pool)])
    step += 1
    if step % 500 == 0:
      add_and_sample()
  assert buffer.nbytes() > 50e6
  for _ in range(100):  # steady state of the sampling temporaries
    add_and_sample()
  full = rss_bytes()
  peak = full
  for i in range(2000):
    add_and_sample()
    if i % 50 == 0:
      peak = max(peak, rss_bytes())
  peak = max(peak, rss_bytes())
  growth = (peak - full) / full
  assert growth < 0.03, (
      f"RSS grew {growth:.1%} ({full / 2**20:.0f} -> {peak / 2**20:.0f} MiB) with a "
      f"full buffer of {buffer.nbytes() / 2**20:.0f} MiB")


def test_prioritized_buffer_counts_its_priorities_in_the_bound(pool):
  # Each step also holds a float64 priority: the bound and nbytes count it,
  # so what the buffer allocates never exceeds max_bytes.
  step_bytes = _STEP_BYTES + 8
  max_bytes = 1000 * _STEP_BYTES
  buffer = muax.PrioritizedReplayBuffer(random_seed=0, max_bytes=max_bytes)
  for i in np.random.default_rng(1).permutation(np.arange(300) % len(pool)):
    buffer.add(pool[i])
    assert buffer.nbytes() == buffer.num_transitions() * step_bytes <= max_bytes
    allocated = sum(x.nbytes for x in buffer._store.fields().values())
    assert allocated + buffer._priority.nbytes <= max_bytes
  # Full: no room for one more trajectory of the pool (at most 200 steps).
  assert buffer.num_transitions() > max_bytes // step_bytes - 200
