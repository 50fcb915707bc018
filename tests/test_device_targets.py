"""The device's n-step targets (muax.core.targets) are the host tracer's."""
import jax
import numpy as np
import pytest

import muax
from muax.core import targets


def random_stream(seed, length=60, p_term=0.08, p_trunc=0.05):
  rng = np.random.default_rng(seed)
  r = rng.normal(size=length).astype(np.float32)
  v = rng.normal(size=length).astype(np.float32)
  terminated = rng.random(length) < p_term
  truncated = rng.random(length) < p_trunc  # some steps are both: terminated wins
  boot = rng.normal(size=length).astype(np.float32)
  return r, v, terminated, truncated, boot


def host_targets(stream, n, discount, two_player=False, alpha=None):
  """The tracer fed the stream step by step, as the host loop feeds it."""
  r, v, terminated, truncated, boot = stream
  tracer = (muax.NStep(n, discount, two_player=two_player) if alpha is None
            else muax.PNStep(n, discount, alpha, two_player=two_player))
  out = []
  for t in range(len(r)):
    tracer.add(np.zeros(4, np.float32), 0, float(r[t]), bool(terminated[t]), float(v[t]),
               np.array([0.5, 0.5]), truncated=bool(truncated[t]),
               bootstrap_value=float(boot[t]))
    while tracer:
      out.append(tracer.pop())
  return out


@pytest.mark.parametrize("n", [1, 3, 10])
@pytest.mark.parametrize("two_player", [False, True])
def test_targets_equal_the_host_tracers_on_streams_with_ends_and_time_limits(n, two_player):
  for seed in range(6):
    stream = random_stream(seed)
    assert stream[2].any() and stream[3].any()
    host = host_targets(stream, n, 0.9, two_player)
    device = jax.jit(lambda *s: targets.nstep_targets(
        *s, n=n, discount=0.9, two_player=two_player))(*stream)
    ready = np.asarray(device.ready)
    # Ready steps are those the tracer has emitted, in stream order; the rest
    # (the unfinished episode's last steps) wait for more steps in both.
    assert ready.sum() == len(host)
    assert ready[:len(host)].all()
    np.testing.assert_allclose(np.asarray(device.Rn)[ready], [t.Rn for t in host],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(device.done)[ready], [t.done for t in host])


def test_a_window_that_reaches_a_time_limit_bootstraps_from_its_value():
  # Four steps, a time limit after the third: step 0's 3-step window holds three
  # rewards and the cut-off observation's value, not step 3's search value.
  r = np.array([1., 2., 3., 4.], np.float32)
  v = np.array([0., 0., 0., 100.], np.float32)
  boot = np.array([0., 0., 7., 0.], np.float32)
  out = targets.nstep_targets(r, v, np.zeros(4, bool), np.array([0, 0, 1, 0], bool), boot,
                              n=3, discount=0.5)
  assert float(out.Rn[0]) == pytest.approx(1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 7)
  assert float(out.Rn[2]) == pytest.approx(3 + 0.5 * 7)
  assert not np.asarray(out.done).any()
  # Step 3 starts a new episode that the stream has not finished.
  np.testing.assert_array_equal(out.ready, [True, True, True, False])


def test_vmapped_over_environments_each_stream_is_its_own():
  streams = [random_stream(seed, length=30) for seed in range(4)]
  stacked = [np.stack(field, axis=1) for field in zip(*streams)]  # [T, B]
  batched = jax.vmap(lambda *s: targets.nstep_targets(*s, n=4, discount=0.97),
                     in_axes=1, out_axes=1)(*stacked)
  for b, stream in enumerate(streams):
    alone = targets.nstep_targets(*stream, n=4, discount=0.97)
    np.testing.assert_allclose(batched.Rn[:, b], alone.Rn, rtol=1e-6)
    np.testing.assert_array_equal(batched.ready[:, b], alone.ready)


def test_priorities_are_pnsteps():
  stream = random_stream(3)
  host = host_targets(stream, 5, 0.99, alpha=0.6)
  out = targets.nstep_targets(*stream, n=5, discount=0.99)
  ready = np.asarray(out.ready)
  np.testing.assert_allclose(targets.priorities(stream[1], out.Rn, 0.6)[ready],
                             [t.w for t in host], rtol=1e-4, atol=1e-5)
