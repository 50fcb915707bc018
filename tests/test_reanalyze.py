"""Reanalyze: bootstrap fields from replay, fresh targets, the target network."""
import jax
import numpy as np
import pytest

import muax
from muax import nn
from muax.replay_buffer import Trajectory
from muax.support import logits_to_scalar
from tb_events import read_scalars

N, GAMMA = 3, 0.9


def traced(length, *, terminated=True, start=0, two_player=False, num_actions=2):
  """A trajectory whose rewards and values are known: r_t = 1, v_t = start + t."""
  tracer = muax.NStep(N, GAMMA, two_player=two_player)
  traj = Trajectory()
  for t in range(length):
    last = t == length - 1
    tracer.add(np.array([start + t, 1.], np.float32), t % num_actions, 1.,
               last and terminated, v=float(start + t),
               pi=np.full(num_actions, 1. / num_actions),
               truncated=last and not terminated, bootstrap_value=-50.)
    while tracer:
      traj.add(tracer.pop())
  return traj


def test_bootstrap_fields_point_at_the_step_n_later():
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=0)
  buffer.add(traced(8, start=0))
  buffer.add(traced(6, terminated=False, start=100))
  batch = buffer.sample(batch_size=300, k_steps=3, bootstrap=(N, GAMMA))
  t = batch.obs[..., 0] % 100
  length = np.where(batch.obs[..., 0] >= 100, 6, 8)
  known = batch.next_discount > 0
  # Known exactly where step t+n is stored and Rn bootstraps from it.
  np.testing.assert_array_equal(known, batch.inside & (t + N < length))
  np.testing.assert_allclose(batch.next_discount[known], GAMMA ** N, rtol=1e-6)
  np.testing.assert_array_equal(batch.next_obs[..., 0][known], batch.obs[..., 0][known] + N)
  np.testing.assert_array_equal(batch.next_v[known], batch.obs[..., 0][known] + N)
  # Rn minus the bootstrap is the n-step reward sum.
  partial = batch.Rn - batch.next_discount * batch.next_v
  np.testing.assert_allclose(partial[known], (1 - GAMMA ** N) / (1 - GAMMA), rtol=1e-5)
  assert (~batch.inside).any() and (batch.next_discount[~batch.inside] == 0).all()


def test_two_player_bootstraps_alternate_sign():
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=0)
  buffer.add(traced(9, two_player=True))
  tracer = muax.NStep(N, GAMMA, two_player=True)
  batch = buffer.sample(batch_size=50, k_steps=2, bootstrap=(N, tracer.step_discount))
  known = batch.next_discount != 0
  np.testing.assert_allclose(batch.next_discount[known], (-GAMMA) ** N, rtol=1e-6)
  partial = batch.Rn - batch.next_discount * batch.next_v
  np.testing.assert_allclose(partial[known], 1 - GAMMA + GAMMA ** 2, rtol=1e-5)


def test_bootstrap_argument_is_checked():
  buffer = muax.TrajectoryReplayBuffer(10)
  buffer.add(traced(5))
  with pytest.raises(ValueError, match="bootstrap"):
    buffer.sample(batch_size=2, k_steps=2, bootstrap=3)
  with pytest.raises(ValueError, match="discount"):
    buffer.sample(batch_size=2, k_steps=2, bootstrap=(3, 2.))


def make_model(policy="muzero", **kwargs):
  model = muax.MuZero(nn._init_representation_func(nn.Representation, 8),
                      nn._init_prediction_func(nn.Prediction, 2, 11),
                      nn._init_dynamic_func(nn.Dynamic, 8, 2, 11), policy=policy,
                      support_size=5, discount=GAMMA, **kwargs)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 2), np.float32))
  return model


def sample(batch_size=8):
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=1)
  for i in range(3):
    buffer.add(traced(10, start=10 * i))
  return buffer.sample(batch_size=batch_size, k_steps=3, bootstrap=(N, GAMMA))


def value_of(model, params, obs):
  s = model.repr_func.apply(params["representation"], obs)
  return np.asarray(logits_to_scalar(model.pred_func.apply(params["prediction"], s)[0], 5))


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_reanalysed_rows_get_search_policies_and_fresh_values(policy):
  model = make_model(policy)
  batch = sample()
  config = muax.Reanalyze(fraction=0.5, num_simulations=6)
  new, metrics = muax.reanalyze.reanalyze_batch(model, model.params, model.params,
                                                jax.random.PRNGKey(3), batch, config)
  assert config.rows(8) == 4
  # Rows past the fraction are untouched.
  np.testing.assert_array_equal(np.asarray(new.pi[4:]), batch.pi[4:])
  np.testing.assert_array_equal(np.asarray(new.Rn[4:]), batch.Rn[4:])
  # Policy: the greedy search policy of each observation.
  for row in range(4):
    for k in range(3):
      if batch.inside[row, k]:
        _, pi = model.act(jax.random.PRNGKey(9), batch.obs[row, k], with_pi=True,
                          num_simulations=6, temperature=0.)
        np.testing.assert_allclose(np.asarray(new.pi[row, k]), pi, atol=1e-5)
      else:
        np.testing.assert_allclose(np.asarray(new.pi[row, k]), batch.pi[row, k])
  # Value: the n-step rewards plus g^n times the target network's value.
  head = batch[:4]
  fresh = value_of(model, model.params, head.next_obs.reshape(-1, 2)).reshape(4, 3)
  want = np.where(head.next_discount > 0,
                  head.Rn - head.next_discount * head.next_v + head.next_discount * fresh,
                  head.Rn)
  np.testing.assert_allclose(np.asarray(new.Rn[:4]), want, rtol=1e-5, atol=1e-5)
  assert float(metrics["reanalyze_value_shift"]) > 0.


def test_value_only_and_latest_network_settings():
  model = make_model()
  batch = sample()
  other = jax.tree_util.tree_map(lambda x: x * 1.5, model.params)
  value_only = muax.Reanalyze(fraction=1., policy=False)
  new, metrics = muax.reanalyze.reanalyze_batch(model, model.params, other,
                                                jax.random.PRNGKey(0), batch, value_only)
  np.testing.assert_array_equal(np.asarray(new.pi), batch.pi)
  assert "reanalyze_policy_shift" not in metrics
  fresh = value_of(model, other, batch.next_obs.reshape(-1, 2)).reshape(8, 3)
  known = batch.next_discount > 0
  np.testing.assert_allclose(
      np.asarray(new.Rn)[known],
      (batch.Rn + batch.next_discount * (fresh - batch.next_v))[known], rtol=1e-5, atol=1e-5)
  latest = muax.Reanalyze(fraction=1., value=False, search_with="latest", num_simulations=4)
  a, _ = muax.reanalyze.reanalyze_batch(model, model.params, other, jax.random.PRNGKey(0),
                                        batch, latest)
  b, _ = muax.reanalyze.reanalyze_batch(model, other, model.params, jax.random.PRNGKey(0),
                                        batch, latest.__class__(**dict(
                                            latest.__dict__, search_with="target")))
  np.testing.assert_allclose(np.asarray(a.pi), np.asarray(b.pi), atol=1e-6)


def test_target_network_refreshes_every_interval():
  model = make_model(optimizer=muax.model.optimizer(peak_value=1e-2, warmup_steps=1))
  model.set_reanalyze(muax.Reanalyze(fraction=0.5, num_simulations=3,
                                     target_update_interval=3))
  history = [model.params]
  for _ in range(5):
    model.update(sample())
    history.append(model.params)
  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(  # noqa: E731
      jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
  # Refreshed before updates 0 and 3: after 5 updates it is the params after 3.
  assert same(model.target_params, history[3])
  assert not same(model.target_params, history[5])
  # update_many (a scan) follows the same schedule.
  scan_model = make_model(optimizer=muax.model.optimizer(peak_value=1e-2, warmup_steps=1))
  scan_model.set_reanalyze(muax.Reanalyze(fraction=0.5, num_simulations=3,
                                          target_update_interval=3))
  batches = [sample() for _ in range(5)]
  scan_model.update_many(jax.tree_util.tree_map(lambda *x: np.stack(x), *batches))
  assert int(scan_model.train_state.count) == 5
  assert not same(scan_model.target_params, scan_model.params)


def test_reanalyze_errors_name_the_problem():
  model = make_model()
  model.set_reanalyze(0.25)
  assert model.reanalyze.fraction == 0.25
  plain = muax.TrajectoryReplayBuffer(5)
  plain.add(traced(6))
  with pytest.raises(ValueError, match="bootstrap"):
    model.update(plain.sample(batch_size=2, k_steps=2))
  model.set_reanalyze(None)
  model.update(plain.sample(batch_size=2, k_steps=2))
  with pytest.raises(ValueError, match="fraction"):
    muax.Reanalyze(fraction=0.)
  with pytest.raises(ValueError, match="search_with"):
    muax.Reanalyze(search_with="old")
  with pytest.raises(ValueError, match="does nothing"):
    muax.Reanalyze(policy=False, value=False)
  with pytest.raises(TypeError, match="reanalyze"):
    model.set_reanalyze("yes")


def test_fit_with_reanalyze_and_prioritized_replay(tmp_path):
  model = muax.MuZero(nn._init_representation_func(nn.Representation, 8),
                      nn._init_prediction_func(nn.Prediction, 2, 11),
                      nn._init_dynamic_func(nn.Dynamic, 8, 2, 11), support_size=5)
  buffer = muax.PrioritizedReplayBuffer(50, random_seed=0)
  result = muax.train.run(
      model, env_id="CartPole-v1", buffer=buffer, tracer=muax.PNStep(5, 0.99),
      reanalyze=muax.Reanalyze(fraction=0.5, num_simulations=3, target_update_interval=4),
      max_episodes=2, num_simulations=3, k_steps=3, buffer_warm_up=2, num_trajectory=4,
      sample_per_trajectory=2, num_update_per_episode=3, test_interval=2,
      num_test_episodes=1, tensorboard_dir=str(tmp_path), model_save_path=str(tmp_path / "m"),
      progress=False, random_seed=0, log_all_metrics=True)
  assert result.training_steps == 6 and int(model.train_state.count) == 6
  assert model.target_params is not None
  tags = read_scalars(result.logdir)
  assert any("reanalyze_value_shift" in tag for tag in tags)


def test_variants_refuse_reanalyze():
  stochastic = muax.stochastic.build_model(2, num_chance_outcomes=2)
  with pytest.raises(ValueError, match="reanalyze works with"):
    stochastic.set_reanalyze(0.5)
