"""A user's loop written against the old muax README runs unchanged."""
import os
import shutil

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muax
from muax import nn
from conftest import make_mlp_model


def test_old_style_hand_written_loop(tmp_path):
  support_size, embedding_size, discount, num_actions = 10, 8, 0.99, 2
  full_support_size = int(support_size * 2 + 1)
  repr_fn = nn._init_representation_func(nn.Representation, embedding_size)
  pred_fn = nn._init_prediction_func(nn.Prediction, num_actions, full_support_size)
  dy_fn = nn._init_dynamic_func(nn.Dynamic, embedding_size, num_actions, full_support_size)
  tracer = muax.PNStep(10, discount, 0.5)
  buffer = muax.TrajectoryReplayBuffer(500)
  gradient_transform = muax.model.optimizer(init_value=0.02, peak_value=0.02, end_value=0.002,
                                            warmup_steps=5000, transition_steps=5000)
  model = muax.MuZero(repr_fn, pred_fn, dy_fn, policy='muzero', discount=discount,
                      optimizer=gradient_transform, support_size=support_size)
  env = gym.make('CartPole-v1')
  sample_input = jnp.expand_dims(jnp.zeros(env.observation_space.shape), axis=0)
  key = jax.random.PRNGKey(0)
  model.init(key, sample_input)

  for ep in range(3):
    obs, info = env.reset(seed=ep)
    trajectory = muax.Trajectory()
    for t in range(env.spec.max_episode_steps):
      key, subkey = jax.random.split(key)
      a, pi, v = model.act(subkey, obs, with_pi=True, with_value=True, obs_from_batch=False,
                           num_simulations=5, temperature=1.)
      obs_next, r, done, truncated, info = env.step(a)
      tracer.add(obs, a, r, done or truncated, v=v, pi=pi)
      while tracer:
        trans = tracer.pop()
        trajectory.add(trans)
      if done or truncated:
        break
      obs = obs_next
    trajectory.finalize()
    buffer.add(trajectory, trajectory.batched_transitions.w.mean())
  losses = []
  for _ in range(3):
    transition_batch = buffer.sample(num_trajectory=4, sample_per_trajectory=2, k_steps=10)
    loss_metric = model.update(transition_batch)
    losses.append(loss_metric['loss'])
  assert all(np.isfinite(losses))
  obs_batch, pi_batch = transition_batch.obs, transition_batch.pi
  assert obs_batch.shape == (8, 10, 4) and pi_batch.shape == (8, 10, 2)
  first = transition_batch[:, 0:1]
  assert first.obs.shape == (8, 1, 4) and first.a.shape == (8, 1)
  obs_, a_, r_, done_, Rn_, v_, pi_, w_ = first  # unpacks in the documented order
  assert Rn_.shape == (8, 1)

  path = str(tmp_path / 'params')
  model.save(path)
  model2 = muax.MuZero(repr_fn, pred_fn, dy_fn, policy='muzero', discount=discount,
                       optimizer=gradient_transform, support_size=support_size)
  model2.load(path)
  a, pi = model2.act(key, obs, with_pi=True, num_simulations=5, temperature=0.)
  assert np.asarray(pi).reshape(1, -1).shape == (1, num_actions)


# -- files written by earlier releases ------------------------------------------

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "0.1.0")
_TINY = dict(test_interval=2, num_test_episodes=1, max_training_steps=10_000,
             num_simulations=3, k_steps=3, buffer_warm_up=2, num_trajectory=4,
             sample_per_trajectory=2, num_update_per_episode=2, progress=False,
             random_seed=7, checkpoint_interval=0, keep_checkpoints=1)


def test_a_checkpoint_written_by_release_0_1_0_loads_and_acts():
  model = make_mlp_model(init=False).load(os.path.join(FIXTURES, "model_muzero"))
  assert model.num_actions == 2 and model.obs_shape == (4,)
  a = model.act(jax.random.PRNGKey(0), np.zeros(4, np.float32), num_simulations=4,
                temperature=0.)
  assert a in (0, 1)
  params, _, _ = muax.checkpoint.load(os.path.join(FIXTURES, "run_muzero", "latest",
                                                   "model_params"))
  for x, y in zip(jax.tree_util.tree_leaves(params),
                  jax.tree_util.tree_leaves(model.params)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name, policy, buffer", [
    ("muzero", "muzero", muax.TrajectoryReplayBuffer),
    ("gumbel_per", "gumbel", muax.PrioritizedReplayBuffer)])
def test_a_run_written_by_release_0_1_0_resumes_from_another_folder(
    tmp_path, monkeypatch, capsys, name, policy, buffer):
  # Copied elsewhere and resumed from another working directory, as a user
  # moving a run folder to another machine would.
  shutil.copytree(os.path.join(FIXTURES, f"run_{name}"), tmp_path / "moved")
  monkeypatch.chdir(tmp_path)
  for episodes in (2, 3):  # the finished run as saved, then one episode more
    model = make_mlp_model(policy, init=False)
    result = muax.train.run(model, env_id="CartPole-v1", model_save_path="moved",
                            tensorboard_dir="tb", resume=True, max_episodes=episodes,
                            buffer=buffer(20, random_seed=7), **_TINY)
    assert "resuming from" in capsys.readouterr().err
    assert result.episodes == episodes and result.training_steps == episodes * 2
    assert os.path.isfile(muax.checkpoint.resolve(result.best_path))
    assert os.path.realpath(result.best_path).startswith(str(tmp_path / "moved"))
