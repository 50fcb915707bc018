import numpy as np
import pytest

import muax


def _run(tracer, steps, done_at, truncate_at=None, bootstrap=None):
  out = []
  for t in range(steps):
    tracer.add(t, 0, 1., t == done_at, v=float(t), pi=np.array([.5, .5]),
               truncated=(t == truncate_at), bootstrap_value=bootstrap)
    while tracer:
      out.append(tracer.pop())
  return out


def test_api_example_n3():
  out = _run(muax.NStep(3, 0.9), 5, done_at=4)
  np.testing.assert_allclose([t.Rn for t in out], [4.897, 5.626, 2.71, 1.9, 1.0], atol=1e-3)
  assert [t.done for t in out] == [False, False, True, True, True]
  assert [t.obs for t in out] == [0, 1, 2, 3, 4]


def test_transition_ready_only_after_n():
  tracer = muax.NStep(3, 0.9)
  for t in range(3):
    tracer.add(t, 0, 1., False, v=0.)
    assert not tracer
  tracer.add(3, 0, 1., False, v=0.)
  assert tracer and len(tracer) == 4
  tracer.pop()
  assert not tracer
  with pytest.raises(IndexError, match="no transition is ready"):
    tracer.pop()


def test_truncation_bootstraps_old_defect_6():
  # Episode cut by a time limit after 3 steps; the next observation is worth 10.
  out = _run(muax.NStep(3, 0.9), 3, done_at=None, truncate_at=2, bootstrap=10.)
  np.testing.assert_allclose([t.Rn for t in out],
                             [2.71 + 0.729 * 10, 1.9 + 0.81 * 10, 1. + 0.9 * 10], atol=1e-4)
  assert not any(t.done for t in out)


def test_termination_wins_over_truncation():
  out = _run(muax.NStep(3, 0.9), 2, done_at=1, truncate_at=1, bootstrap=100.)
  np.testing.assert_allclose([t.Rn for t in out], [1.9, 1.0])
  assert all(t.done for t in out)


def test_truncation_needs_bootstrap_value():
  with pytest.raises(ValueError, match="bootstrap_value"):
    muax.NStep(3, 0.9).add(0, 0, 1., False, truncated=True)


def test_pnstep_priority():
  out = _run(muax.PNStep(3, 0.9, alpha=0.5), 5, done_at=4)
  for t in out:
    assert t.w == pytest.approx(abs(t.v - t.Rn) ** 0.5)


def test_reset_forgets():
  tracer = muax.NStep(2, 1.)
  tracer.add(0, 0, 5., False)
  tracer.reset()
  out = _run(tracer, 2, done_at=1)
  assert [t.Rn for t in out] == [2., 1.]


@pytest.mark.parametrize("kwargs,match", [
    (dict(n=0, gamma=0.9), "n must be"), (dict(n=3, gamma=1.5), "gamma"),
    (dict(n=2.5, gamma=0.9), "n must be")])
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    muax.NStep(**kwargs)


def test_non_finite_reward_rejected():
  with pytest.raises(ValueError, match="reward must be finite"):
    muax.NStep(2, 0.9).add(0, 0, float("nan"), False)
