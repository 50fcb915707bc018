"""The pure learner (muax.core.learner) and the loop's Learner, driven by hand."""
import gymnasium as gym
import jax
import numpy as np
import pytest

import muax
from muax import acting
from muax.loop import Learner
from conftest import make_mlp_model


def _batches(seed=0, num_batches=3):
  buffer = muax.TrajectoryReplayBuffer(20, random_seed=seed)
  rng = np.random.default_rng(seed)
  for _ in range(4):
    tracer, trajectory = muax.NStep(3, 0.9), muax.Trajectory()
    for t in range(8):
      tracer.add(rng.normal(size=4).astype(np.float32), int(rng.integers(2)),
                 float(rng.normal()), t == 7, v=0., pi=np.array([0.5, 0.5], np.float32))
      while tracer:
        trajectory.add(tracer.pop())
    buffer.add(trajectory, 1.)
  return buffer.sample(num_trajectory=2, sample_per_trajectory=2, k_steps=3,
                       num_batches=num_batches)


def _same(a, b):
  x, y = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  return len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y))


@pytest.mark.parametrize("donate", [True, False])
def test_learner_reproduces_the_models_update_many(donate):
  model, reference = make_mlp_model(), make_mlp_model()
  learner = Learner(model.update_functions()[1], model.train_state, donate=donate)
  for seed in range(3):
    batches = _batches(seed)
    out = learner.learn(batches)
    reference.update_many(batches)
    assert out.priority.shape == (3, 4) and out.skipped.shape == (3,)
    assert np.isfinite(np.asarray(out.metrics["loss"])).all()
  assert _same(learner.state.params, reference.params)
  assert _same(learner.state.opt_state, reference.optimizer_state)
  assert int(learner.state.count) == learner.updates == 9
  # The model's own state was not donated away.
  assert np.isfinite(np.asarray(jax.tree_util.tree_leaves(model.params)[0])).all()
  assert not _same(model.params, learner.params)


@pytest.mark.learning
def test_an_actor_and_a_learner_by_hand_learn_cartpole_values():
  """Collect with a VectorCollector that searches with the learner's
  parameters, add to replay, learn: the pieces fit without `fit`."""
  model = make_mlp_model()
  learner = Learner(model.update_functions()[1], model.train_state)
  envs = acting.make_vector_env(lambda: gym.make("CartPole-v1"), 2, mode="sync")
  collector = acting.VectorCollector(model, envs, acting.KeyStream(jax.random.PRNGKey(0)),
                                     num_simulations=4, tracer=muax.NStep(5, 0.99), seed=0)
  buffer = muax.TrajectoryReplayBuffer(50, random_seed=0)
  losses = []
  try:
    while learner.updates < 60:
      for episode in collector.step(1., params=learner.params):
        buffer.add(episode.trajectory, 1.)
      if len(buffer) >= 2 and collector.env_steps % 20 == 0:
        out = learner.learn(buffer.sample(num_trajectory=2, sample_per_trajectory=4,
                                          k_steps=3, num_batches=10))
        losses.append(float(np.mean(out.metrics["loss"])))
  finally:
    collector.close()
  assert int(learner.state.count) == 60
  # The value and reward heads fit the replayed returns: the loss falls.
  assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses


def test_learner_refuses_what_is_not_a_train_state():
  model = make_mlp_model()
  with pytest.raises(TypeError, match="TrainState"):
    Learner(model.update_functions()[1], model.params)
