"""The device replay buffer (muax.core.replay): bounded, uniform, the host's targets."""
import functools

import jax
import numpy as np
import pytest

import muax
from conftest import make_mlp_model
from muax.core import replay
from test_device_targets import host_targets

NUM_ACTIONS = 3


def streams(num_envs, length, seed=0):
  """`[T, E, ...]` steps; obs = (time, env) so a sampled step says where it came from."""
  rng = np.random.default_rng(seed)
  t, e = np.meshgrid(np.arange(length), np.arange(num_envs), indexing="ij")
  pi = rng.random((length, num_envs, NUM_ACTIONS)).astype(np.float32)
  return dict(
      obs=np.stack([t, e], -1).astype(np.float32),
      a=rng.integers(0, NUM_ACTIONS, (length, num_envs)).astype(np.int32),
      r=rng.normal(size=(length, num_envs)).astype(np.float32),
      v=rng.normal(size=(length, num_envs)).astype(np.float32),
      pi=pi / pi.sum(-1, keepdims=True),
      terminated=rng.random((length, num_envs)) < 0.07,
      truncated=rng.random((length, num_envs)) < 0.04,
      bootstrap_value=rng.normal(size=(length, num_envs)).astype(np.float32))


def filled(steps, capacity, chunk=8, prioritized=False):
  num_envs = steps["r"].shape[1]
  state = replay.init({k: v[0, 0] for k, v in steps.items()}, capacity, num_envs,
                      prioritized=prioritized)
  add = jax.jit(replay.add)
  for start in range(0, steps["r"].shape[0], chunk):
    state = add(state, {k: v[start:start + chunk] for k, v in steps.items()})
  return state


@functools.partial(jax.jit, static_argnames=("batch_size", "k_steps", "n"))
def draw(state, key, batch_size, k_steps, n):
  return replay.sample(state, key, batch_size, k_steps=k_steps, n=n, discount=0.9)


def test_windows_carry_the_host_tracers_targets_and_pad_past_an_episodes_end():
  steps = streams(num_envs=3, length=120)
  k, n = 6, 3
  state = filled(steps, capacity=256)
  batch = jax.device_get(draw(state, jax.random.PRNGKey(0), 512, k, n))
  host = {}
  for e in range(3):
    stream = [steps[f][:, e] for f in ("r", "v", "terminated", "truncated",
                                       "bootstrap_value")]
    host[e] = host_targets(stream, n, 0.9)
  ended = steps["terminated"] | steps["truncated"]
  seen = {"inside": 0, "absorbing": 0, "after_limit": 0}
  for row in range(512):
    t0, e = batch["obs"][row, 0].astype(int)
    assert t0 + k + n <= 120
    for i in range(k):
      first_end = next((j for j in range(t0, t0 + i) if ended[j, e]), None)
      if first_end is None:  # a real step of the window's episode
        seen["inside"] += 1
        assert batch["inside"][row, i] and batch["weight"][row, i] == 1.
        np.testing.assert_array_equal(batch["obs"][row, i], [t0 + i, e])
        assert batch["a"][row, i] == steps["a"][t0 + i, e]
        assert batch["Rn"][row, i] == pytest.approx(host[e][t0 + i].Rn, rel=1e-5, abs=1e-5)
        assert batch["done"][row, i] == host[e][t0 + i].done
      elif steps["terminated"][first_end, e]:  # absorbing, as the host buffer pads
        seen["absorbing"] += 1
        assert not batch["inside"][row, i] and batch["weight"][row, i] == 1.
        np.testing.assert_array_equal(batch["obs"][row, i], [first_end, e])
        assert batch["r"][row, i] == 0. and batch["Rn"][row, i] == 0.
        assert batch["v"][row, i] == 0. and batch["done"][row, i]
        np.testing.assert_allclose(batch["pi"][row, i], 1. / NUM_ACTIONS)
        assert 0 <= batch["a"][row, i] < NUM_ACTIONS
      else:  # past a time limit: the next episode's steps, weighted out
        seen["after_limit"] += 1
        assert not batch["inside"][row, i] and batch["weight"][row, i] == 0.
  assert min(seen.values()) > 10, seen


def test_the_buffer_keeps_only_its_last_capacity_steps_per_environment():
  steps = streams(num_envs=2, length=100)
  k, n, capacity = 4, 2, 24
  state = filled(steps, capacity, chunk=5)
  assert state.steps["obs"].shape == (capacity, 2, 2)
  assert int(state.count) == 100
  batch = jax.device_get(draw(state, jax.random.PRNGKey(1), 2000, k, n))
  starts = batch["obs"][:, 0, 0]
  assert starts.min() == 100 - capacity and starts.max() == 100 - k - n


def test_starts_are_uniform_over_environments_and_admissible_steps():
  steps = streams(num_envs=2, length=40)
  k, n = 5, 3
  state = filled(steps, capacity=64)
  batch = jax.device_get(draw(state, jax.random.PRNGKey(2), 40_000, k, n))
  t0, e = batch["obs"][:, 0, 0].astype(int), batch["obs"][:, 0, 1].astype(int)
  counts = np.zeros((2, 40 - k - n + 1))
  np.add.at(counts, (e, t0), 1)
  expected = len(t0) / counts.size
  chi2 = ((counts - expected) ** 2 / expected).sum()
  # 65 degrees of freedom: 120 is far in the tail (p < 1e-4) of a uniform draw.
  assert counts.min() > 0 and chi2 < 120, chi2


def test_state_is_a_pytree_that_saves_and_samples_the_same():
  steps = streams(num_envs=2, length=30)
  state = filled(steps, capacity=32)
  saved = jax.device_get(state)
  restored = jax.tree_util.tree_map(np.asarray, saved)
  key = jax.random.PRNGKey(3)
  a, b = draw(state, key, 64, 4, 2), draw(restored, key, 64, 4, 2)
  for name in a:
    np.testing.assert_array_equal(a[name], b[name])


def test_a_sampled_batch_is_an_update_batch_with_masks():
  steps = streams(num_envs=2, length=40)
  steps["mask"] = np.ones((40, 2, NUM_ACTIONS), bool)
  steps["obs"] = steps["obs"] / 40.
  state = filled(steps, capacity=64)
  assert bool(replay.can_sample(state, 5, 3))
  batch = muax.Transition(**draw(state, jax.random.PRNGKey(4), 16, 5, 3))
  model = make_mlp_model(num_actions=NUM_ACTIONS, obs_dim=2)
  metrics = model.update(batch)
  assert np.isfinite(metrics["loss"]) and metrics["skipped"] == 0.


def test_continuous_windows_keep_their_candidates_and_absorb_into_the_last_ones():
  steps = streams(num_envs=3, length=120, seed=5)
  rng = np.random.default_rng(5)
  steps["candidates"] = rng.uniform(-2., 2., (120, 3, NUM_ACTIONS, 1)).astype(np.float32)
  steps["a"] = np.take_along_axis(steps["candidates"], steps["a"][..., None, None], 2)[:, :, 0]
  k, n = 6, 3
  batch = jax.device_get(draw(filled(steps, capacity=256), jax.random.PRNGKey(6), 512, k, n))
  assert batch["a"].shape == (512, k, 1) and batch["candidates"].shape == (512, k, 3, 1)
  seen = {"inside": 0, "absorbing": 0}
  for row in range(512):
    t0, e = batch["obs"][row, 0].astype(int)
    for i in range(k):
      ends = [j for j in range(t0, t0 + i)
              if steps["terminated"][j, e] or steps["truncated"][j, e]]
      if not ends:
        seen["inside"] += 1
        np.testing.assert_array_equal(batch["candidates"][row, i],
                                      steps["candidates"][t0 + i, e])
        np.testing.assert_array_equal(batch["a"][row, i], steps["a"][t0 + i, e])
      elif steps["terminated"][ends[0], e]:  # the terminal step's candidates, one of them taken
        seen["absorbing"] += 1
        last = steps["candidates"][ends[0], e]
        np.testing.assert_array_equal(batch["candidates"][row, i], last)
        assert (np.abs(last - batch["a"][row, i]) < 1e-7).all(-1).any()
  assert min(seen.values()) > 10, seen


def test_bad_shapes_and_sizes_are_refused():
  with pytest.raises(ValueError, match="missing \\['bootstrap_value'\\]"):
    replay.init(dict(obs=0., a=0, r=0., v=0., pi=np.zeros(2), terminated=False,
                     truncated=False), 8, 1)
  steps = streams(num_envs=1, length=10)
  state = replay.init({k: v[0, 0] for k, v in steps.items()}, 4, 1)
  with pytest.raises(ValueError, match="cannot add 10 steps at once to a buffer of 4"):
    replay.add(state, steps)
  assert not bool(replay.can_sample(state, 2, 2))


def prioritized(steps, capacity, priority=None):
  state = filled(steps, capacity, prioritized=True)
  return state if priority is None else state.replace(priority=priority)


@functools.partial(jax.jit, static_argnames=("batch_size", "k_steps", "n", "alpha"))
def draw_prioritized(state, key, batch_size, k_steps, n, alpha, beta):
  return replay.sample_prioritized(state, key, batch_size, k_steps=k_steps, n=n, discount=0.9,
                                   alpha=alpha, beta=beta)


def test_prioritized_starts_follow_their_priorities_with_importance_weights():
  # PrioritizedReplayBuffer's rule: P(i) = p_i^alpha / sum_j p_j^alpha over the
  # admissible starts, weight (N P(i))^-beta over its batch's largest.
  length, k, n, alpha, beta = 40, 5, 3, 0.6, 0.4
  steps = streams(num_envs=2, length=length)
  priority = np.random.default_rng(5).uniform(0.05, 3., (64, 2)).astype(np.float32)
  state = prioritized(steps, capacity=64, priority=priority)
  batch, index = jax.device_get(draw_prioritized(state, jax.random.PRNGKey(6), 40_000, k, n,
                                                 alpha, beta))
  t0, e = batch["obs"][:, 0, 0].astype(int), batch["obs"][:, 0, 1].astype(int)
  np.testing.assert_array_equal(index, np.stack([t0, e], -1))  # capacity > length: row = step
  starts = length - k - n + 1
  p = priority[:starts] ** alpha
  expected = p / p.sum() * len(t0)
  counts = np.zeros((starts, 2))
  np.add.at(counts, (t0, e), 1)
  chi2 = ((counts - expected) ** 2 / expected).sum()
  # 65 degrees of freedom: 120 is far in the tail (p < 1e-4) of a draw by these priorities.
  assert counts[:, :].sum() == len(t0) and chi2 < 120, chi2
  uniform = len(t0) / counts.size
  assert ((counts - uniform) ** 2 / uniform).sum() > 1_000  # and not uniformly
  is_weight = (p.size * p[t0, e] / p.sum()) ** -beta
  np.testing.assert_allclose(batch["weight"][:, 0], is_weight / is_weight.max(), rtol=1e-4)
  # the weight is the window's: the same along it (times the padding's 0 after a limit)
  assert set(np.unique(batch["weight"] / batch["weight"][:, :1])) <= {0., 1.}


def test_new_steps_get_the_largest_priority_and_updates_set_error_plus_epsilon():
  steps = streams(num_envs=2, length=30)
  state = prioritized({k: v[:20] for k, v in steps.items()}, capacity=24)
  np.testing.assert_array_equal(state.priority[:20], 1.)  # max_priority starts at 1
  index = np.array([[3, 0], [4, 1], [5, 0]], np.int32)
  state = jax.jit(replay.update_priorities)(state, index, np.array([-2., np.nan, .5]))
  np.testing.assert_allclose(state.priority[index[:, 0], index[:, 1]], [2.001, 1., .501])
  assert float(state.max_priority) == pytest.approx(2.001)
  state = jax.jit(replay.add)(state, {k: v[20:30] for k, v in steps.items()})
  # steps 20..29 went to rows 20..23 and 0..5, overwriting the updated ones
  rows = np.r_[20:24, 0:6]
  np.testing.assert_allclose(state.priority[rows], 2.001)
  np.testing.assert_array_equal(state.priority[6:20], 1.)
  uniform = filled(steps, capacity=24)
  assert uniform.priority is None
  with pytest.raises(ValueError, match="prioritized=True"):
    replay.sample_prioritized(uniform, jax.random.PRNGKey(0), 4, k_steps=2, n=2, discount=.9,
                              alpha=.6, beta=.4)


def test_prioritized_draws_skip_overwritten_and_unfinished_steps():
  steps = streams(num_envs=2, length=100)
  k, n, capacity = 4, 2, 24
  state = prioritized(steps, capacity)  # 100 steps through a ring of 24
  state = state.replace(priority=np.random.default_rng(7).uniform(.1, 1., (capacity, 2)))
  batch, _ = jax.device_get(draw_prioritized(state, jax.random.PRNGKey(8), 4000, k, n, 1., 1.))
  starts = batch["obs"][:, 0, 0]
  assert starts.min() == 100 - capacity and starts.max() == 100 - k - n


def test_symmetric_windows_move_boards_actions_policies_and_masks_alike():
  from muax.jax_envs import board_symmetries  # noqa: PLC0415
  symmetries = board_symmetries(3, 3, dihedral=True)
  rng = np.random.default_rng(7)
  b, k = 4000, 2
  pi = rng.random((b, k, 9)).astype(np.float32)
  batch = dict(obs=rng.random((b, k, 3, 3, 2)).astype(np.float32),
               a=rng.integers(0, 9, (b, k)).astype(np.int32), pi=pi / pi.sum(-1, keepdims=True),
               mask=rng.random((b, k, 9)) < 0.5, r=rng.normal(size=(b, k)).astype(np.float32))
  out = jax.device_get(jax.jit(lambda x, key: replay.symmetric(x, key, symmetries))(
      batch, jax.random.PRNGKey(0)))
  np.testing.assert_array_equal(out["r"], batch["r"])
  drawn = []
  for row in range(b):
    # the symmetry each window got is the one whose transform gives its board
    which = [s for s, (transform, _) in enumerate(symmetries)
             if np.array_equal(np.asarray(transform(batch["obs"][row, 0])), out["obs"][row, 0])]
    assert len(which) == 1
    transform, permutation = symmetries[which[0]]
    drawn.append(which[0])
    np.testing.assert_array_equal(np.asarray(transform(batch["obs"][row, 1])), out["obs"][row, 1])
    np.testing.assert_array_equal(out["a"][row], permutation[batch["a"][row]])
    np.testing.assert_array_equal(out["pi"][row][:, permutation], batch["pi"][row])
    np.testing.assert_array_equal(out["mask"][row][:, permutation], batch["mask"][row])
  counts = np.bincount(drawn, minlength=8)
  assert counts.min() > 400, counts  # 500 each expected: all eight are used
