"""Prioritized replay at transition level: sampling, IS weights, refresh, state."""
import jax
import numpy as np
import pytest

import muax
from muax import nn
from test_replay_buffer import make_trajectory


def filled(num=4, length=10, terminated=True, **kwargs):
  buffer = muax.PrioritizedReplayBuffer(random_seed=0, **dict(dict(capacity=100), **kwargs))
  for i in range(num):
    buffer.add(make_trajectory(length, terminated, start=100 * i))
  return buffer


def test_new_steps_get_the_largest_priority_so_far():
  buffer = filled(num=2)
  np.testing.assert_array_equal(buffer.priorities(), np.ones(20))
  _, ids = buffer.sample(batch_size=4, k_steps=2, return_ids=True)
  buffer.update_priorities(ids[:1], [7.])
  buffer.add(make_trajectory(3, start=900))
  assert buffer.priorities()[-3:] == pytest.approx([7. + buffer.epsilon] * 3)


def test_windows_are_drawn_in_proportion_to_priority_to_the_alpha():
  buffer = filled(num=2, length=5, alpha=0.5)
  # Step ids are 0..9 here (nothing evicted): give step i priority i + 1.
  buffer.update_priorities(np.arange(10), np.arange(10) + 1. - buffer.epsilon)
  batch, ids = buffer.sample(batch_size=20000, k_steps=2, return_ids=True)
  expected = np.sqrt(np.arange(10) + 1.)
  expected /= expected.sum()
  freq = np.bincount(ids, minlength=10) / ids.size
  np.testing.assert_allclose(freq, expected, atol=0.01)
  # The window starts at the drawn step: obs[0] encodes trajectory and step.
  step = (batch.obs[:, 0, 0] // 100) * 5 + batch.obs[:, 0, 0] % 100
  np.testing.assert_array_equal(step, ids)


def test_importance_weights_correct_for_the_sampling_probability():
  buffer = filled(num=1, length=4, alpha=1., beta=0.5)
  buffer.update_priorities(np.arange(4), np.array([1., 1., 2., 4.]) - buffer.epsilon)
  batch, ids = buffer.sample(batch_size=64, k_steps=1, return_ids=True)
  p = np.array([1., 1., 2., 4.]) / 8.
  raw = (4 * p[ids]) ** -0.5
  np.testing.assert_allclose(batch.weight[:, 0], raw / raw.max(), rtol=1e-5)
  assert batch.weight.shape == (64, 1) and batch.weight.max() == 1.
  # Rarely drawn windows weigh more.
  assert batch.weight[ids == 0, 0].min() > batch.weight[ids == 3, 0].max()


def test_beta_anneals_linearly_to_its_final_value():
  buffer = filled(beta=0.4, beta_final=1., beta_steps=10)
  assert buffer.current_beta == pytest.approx(0.4)
  buffer.sample(batch_size=2, k_steps=2, num_batches=5)
  assert buffer.current_beta == pytest.approx(0.7)
  buffer.sample(batch_size=2, k_steps=2, num_batches=50)
  assert buffer.current_beta == pytest.approx(1.)


def test_alpha_zero_samples_uniformly_and_weights_are_one():
  buffer = filled(num=2, length=5, alpha=0.)
  buffer.update_priorities(np.arange(10), np.arange(10) * 100.)
  batch, ids = buffer.sample(batch_size=20000, k_steps=1, return_ids=True)
  np.testing.assert_allclose(np.bincount(ids) / ids.size, np.full(10, 0.1), atol=0.01)
  np.testing.assert_allclose(batch.weight, 1.)


def test_unterminated_windows_stay_inside_their_trajectory():
  buffer = filled(num=3, length=6, terminated=False)
  batch, ids = buffer.sample(batch_size=500, k_steps=4, return_ids=True)
  offsets = batch.obs[:, :, 0] % 100
  assert offsets[:, -1].max() == 5 and offsets[:, 0].max() == 2
  np.testing.assert_array_equal(np.diff(offsets, axis=1), 1)


def test_ids_survive_growth_and_eviction():
  buffer = muax.PrioritizedReplayBuffer(max_transitions=12, random_seed=0)
  buffer.add(make_trajectory(4, start=0))
  _, ids = buffer.sample(batch_size=8, k_steps=1, return_ids=True)
  buffer.add(make_trajectory(4, start=100))  # the ring grows
  buffer.update_priorities(np.array([1]), np.array([5.]))
  assert buffer.priorities()[1] == pytest.approx(5. + buffer.epsilon)
  buffer.add(make_trajectory(4, start=200))
  buffer.add(make_trajectory(4, start=300))  # evicts the first trajectory
  before = buffer.priorities().copy()
  buffer.update_priorities(np.array([1, 2]), np.array([9., 9.]))  # evicted: ignored
  np.testing.assert_array_equal(buffer.priorities(), before)
  buffer.update_priorities(np.array([12]), np.array([3.]))  # first step of the newest
  assert buffer.priorities()[8] == pytest.approx(3. + buffer.epsilon)
  batch, ids = buffer.sample(batch_size=200, k_steps=1, return_ids=True)
  assert ids.min() >= 4 and ids.max() <= 15


def test_update_priorities_rejects_bad_input():
  buffer = filled()
  with pytest.raises(ValueError, match="one priority per id"):
    buffer.update_priorities([0, 1], [1.])
  with pytest.raises(ValueError, match="finite"):
    buffer.update_priorities([0], [np.nan])
  with pytest.raises(ValueError, match="alpha"):
    muax.PrioritizedReplayBuffer(10, alpha=-1.)
  with pytest.raises(ValueError, match="beta"):
    muax.PrioritizedReplayBuffer(10, beta=2.)
  with pytest.raises(ValueError, match="epsilon"):
    muax.PrioritizedReplayBuffer(10, epsilon=0.)


def test_state_round_trip_gives_the_same_samples():
  buffer = filled()
  _, ids = buffer.sample(batch_size=8, k_steps=3, return_ids=True)
  buffer.update_priorities(ids, np.arange(8.))
  meta, arrays = buffer.state()
  copy = muax.PrioritizedReplayBuffer(1, alpha=0.1)
  copy.restore(meta, arrays)
  assert copy.alpha == buffer.alpha and copy.batches_sampled == buffer.batches_sampled
  a, ids_a = buffer.sample(batch_size=16, k_steps=3, return_ids=True)
  b, ids_b = copy.sample(batch_size=16, k_steps=3, return_ids=True)
  np.testing.assert_array_equal(ids_a, ids_b)
  np.testing.assert_array_equal(a.weight, b.weight)
  buffer.add(make_trajectory(5, start=700))
  copy.add(make_trajectory(5, start=700))
  np.testing.assert_array_equal(buffer.priorities(), copy.priorities())


def test_uniform_and_prioritized_states_do_not_mix():
  per, uniform = filled(), muax.TrajectoryReplayBuffer(10)
  with pytest.raises(ValueError, match="PrioritizedReplayBuffer"):
    uniform.restore(*per.state())
  uniform.add(make_trajectory(5))
  with pytest.raises(ValueError, match="uniform"):
    muax.PrioritizedReplayBuffer(10).restore(*uniform.state())


def make_model(**kwargs):
  return muax.MuZero(nn._init_representation_func(nn.Representation, 8),
                     nn._init_prediction_func(nn.Prediction, 2, 11),
                     nn._init_dynamic_func(nn.Dynamic, 8, 2, 11), support_size=5,
                     optimizer=muax.model.optimizer(peak_value=1e-3, warmup_steps=1),
                     **kwargs)


def test_loss_weights_scale_each_window():
  model = make_model()
  model.init(jax.random.PRNGKey(0), np.zeros((1, 2), np.float32))
  batch = filled().sample(batch_size=6, k_steps=3)
  loss = lambda b: float(muax.loss.default_loss_fn(model, model.params, b)[0])  # noqa: E731
  plain = loss(batch.replace(weight=None))
  assert loss(batch.replace(weight=np.ones((6, 3), np.float32))) == pytest.approx(plain)
  assert loss(batch.replace(weight=np.full((6, 3), 2., np.float32))) == pytest.approx(2 * plain)
  half = np.zeros((6, 3), np.float32)
  half[:3] = 2.
  assert loss(batch.replace(weight=half)) == pytest.approx(loss(batch[:3].replace(weight=None)),
                                                            rel=1e-5)


def test_update_returns_each_windows_value_error():
  model = make_model()
  model.init(jax.random.PRNGKey(0), np.zeros((1, 2), np.float32))
  batch = filled().sample(batch_size=5, k_steps=2)
  params = model.params
  _, priorities = model.update(batch, return_priorities=True)
  s = model.repr_func.apply(params["representation"], batch.obs[:, 0])
  value = muax.support.logits_to_scalar(model.pred_func.apply(params["prediction"], s)[0], 5)
  np.testing.assert_allclose(priorities, np.abs(value - batch.Rn[:, 0]), rtol=1e-4, atol=1e-5)
  # A custom loss without priorities gets the same value errors.
  custom = make_model(loss_fn=lambda m, p, b: muax.loss.default_loss_fn(m, p, b)[0])
  custom.init(jax.random.PRNGKey(0), np.zeros((1, 2), np.float32))
  _, again = custom.update(batch, return_priorities=True)
  np.testing.assert_allclose(again, priorities, rtol=1e-5)
  # update_many gives one row of value errors per update.
  _, many = model.update_many(jax.tree_util.tree_map(lambda x: np.stack([x, x]), batch),
                              return_priorities=True)
  assert many.shape == (2, 5) and np.isfinite(many).all()


def test_fit_refreshes_priorities_after_every_update(tmp_path):
  model = make_model()
  buffer = muax.PrioritizedReplayBuffer(50, random_seed=0)
  result = muax.train.run(
      model, env_id="CartPole-v1", buffer=buffer, tracer=muax.PNStep(5, 0.99),
      max_episodes=3, num_simulations=3, k_steps=3, buffer_warm_up=2, num_trajectory=4,
      sample_per_trajectory=2, num_update_per_episode=4, test_interval=3,
      num_test_episodes=1, tensorboard_dir=str(tmp_path), model_save_path=str(tmp_path / "m"),
      progress=False, random_seed=0)
  assert result.training_steps == 12 and buffer.batches_sampled == 12
  refreshed = buffer.priorities() != 1.
  # Every update's 8 windows got a new priority (some may repeat).
  assert 8 <= refreshed.sum() <= 96
  assert np.all(buffer.priorities()[refreshed] < 100.)
