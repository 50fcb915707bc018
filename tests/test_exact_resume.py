"""A run stopped and resumed is the same run, for every option (issue 13).

Each test trains 6 episodes straight and 3 + resume 3 with one option on, and
compares the whole training state: parameters, optimizer state, the target
network, the update counter and the keys learning consumes.
"""
import jax
import numpy as np

import muax
from muax import nn
from muax import sampled
from muax import stochastic
from conftest import make_mlp_model

# Splits where a test falls anyway (test_interval=3): the extra test at the
# end of a shorter run would draw keys the whole run does not.
TINY = dict(test_interval=3, num_test_episodes=1, max_training_steps=10_000,
            num_simulations=3, k_steps=3, buffer_warm_up=2, num_trajectory=4,
            sample_per_trajectory=2, num_update_per_episode=3, progress=False,
            random_seed=5, checkpoint_interval=0, max_episode_steps=40)
REANALYZE = dict(reanalyze=muax.Reanalyze(fraction=0.5, num_simulations=3,
                                          target_update_interval=4))


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _assert_same_state(a, b):
  for name in ("params", "opt_state", "target_params", "key"):
    x, y = _leaves(getattr(a, name)), _leaves(getattr(b, name))
    assert len(x) == len(y), name
    for u, v in zip(x, y):
      np.testing.assert_array_equal(u, v, err_msg=name)
  assert int(a.count) == int(b.count)


def _run(tmp_path, folder, make_model, episodes, resume=False, buffer=None, tracer=None,
         **kwargs):
  model = make_model()
  buffer = (buffer or muax.TrajectoryReplayBuffer)(30, random_seed=5)
  if tracer is not None:
    kwargs["tracer"] = tracer()
  result = muax.train.run(model, name=folder, tensorboard_dir=str(tmp_path / "tb"),
                          model_save_path=str(tmp_path / folder), resume=resume,
                          buffer=buffer, **{**TINY, "max_episodes": episodes, **kwargs})
  return model, result


def _check_exact_resume(tmp_path, make_model, **kwargs):
  whole, whole_result = _run(tmp_path, "whole", make_model, 6, **kwargs)
  _run(tmp_path, "split", make_model, 3, **kwargs)
  resumed, resumed_result = _run(tmp_path, "split", make_model, 6, resume=True, **kwargs)
  assert resumed_result.training_steps == whole_result.training_steps > 0
  assert int(whole.train_state.count) == whole_result.training_steps
  _assert_same_state(whole.train_state, resumed.train_state)
  assert [t.test_return for t in resumed_result.tests] == [
      t.test_return for t in whole_result.tests]
  return whole


def mlp(**kwargs):
  return lambda: make_mlp_model(init=False, **kwargs)


def test_reanalysis_resumes_exactly(tmp_path):
  whole = _check_exact_resume(tmp_path, mlp(), env_id="CartPole-v1", **REANALYZE)
  assert whole.target_params is not None


def test_prioritized_replay_with_reanalysis_resumes_exactly(tmp_path):
  _check_exact_resume(tmp_path, mlp(), env_id="CartPole-v1",
                      buffer=muax.PrioritizedReplayBuffer, **REANALYZE)


def test_prioritized_replay_resumes_exactly_whole_state(tmp_path):
  _check_exact_resume(tmp_path, mlp(), env_id="CartPole-v1",
                      buffer=muax.PrioritizedReplayBuffer)


def _value_prefix(**kwargs):
  size = 21
  return lambda: muax.MuZero(nn._init_representation_func(nn.Representation, 8),
                             nn._init_prediction_func(nn.Prediction, 2, size),
                             nn._init_dynamic_func(nn.Dynamic, 8, 2, size),
                             value_prefix=True, prefix_hidden=8, prefix_horizon=3, **kwargs)


def test_value_prefix_resumes_exactly(tmp_path):
  _check_exact_resume(tmp_path, _value_prefix(), env_id="CartPole-v1")


def test_consistency_loss_resumes_exactly(tmp_path):
  _check_exact_resume(tmp_path, mlp(loss_fn=muax.loss.make_loss_fn(consistency_weight=1.)),
                      env_id="CartPole-v1")


def test_stochastic_muzero_resumes_exactly(tmp_path):
  _check_exact_resume(
      tmp_path, lambda: stochastic.build_model(2, embedding_dim=8, hidden=16, support_size=5,
                                               num_chance_outcomes=4),
      env_id="CartPole-v1")


def test_sampled_muzero_resumes_exactly(tmp_path):
  import gymnasium as gym
  space = gym.spaces.Box(-2., 2., (1,), np.float32)
  _check_exact_resume(
      tmp_path, lambda: sampled.build_model(space, embedding_dim=8, hidden=(16,),
                                            support_size=5, num_samples=4),
      env_id="Pendulum-v1")


def test_two_player_games_resume_exactly(tmp_path):
  env = muax.games.PettingZooEnv("tictactoe_v3")
  _check_exact_resume(tmp_path, mlp(num_actions=9, obs_dim=18, two_player=True), env=env,
                      test_env=env, tracer=lambda: muax.PNStep(3, 1., two_player=True))
