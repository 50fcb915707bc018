"""Pixel observations: PixelStack, make_atari, make_minatar, ResNet nets, uint8 replay."""
import os
import subprocess
import sys

import gymnasium as gym
import jax
import numpy as np
import optax
import pytest

import muax
from muax import envs
from muax import nn
from muax import wrappers
import scripts

ROOT = os.path.join(os.path.dirname(__file__), "..")


class _Counter(gym.Env):
  """Frames `[2, 3]` (or `[2, 3, 2]`) filled with the step count (10 x episode at reset)."""

  def __init__(self, channels=None):
    shape = (2, 3) if channels is None else (2, 3, channels)
    self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
    self.action_space = gym.spaces.Discrete(4)
    self.t, self.episode = 0, 0

  def reset(self, *, seed=None, options=None):
    self.episode += 1
    self.t = 10 * self.episode
    return np.full(self.observation_space.shape, self.t, np.uint8), {}

  def step(self, action):
    self.t += 1
    return np.full(self.observation_space.shape, self.t, np.uint8), 0., False, False, {}


def _frames(obs, num_frames, channels=1):
  return [int(obs[0, 0, i * channels]) for i in range(num_frames)]


def _actions(obs, num_frames, channels=1):
  return [int(v) for v in obs[0, 0, num_frames * channels:]]


def test_pixel_stack_keeps_frames_and_the_actions_that_led_to_them():
  env = wrappers.PixelStack(_Counter(), 3)
  obs, _ = env.reset()
  assert obs.shape == (2, 3, 6) and obs.dtype == np.uint8
  assert env.observation_space.contains(obs)
  assert _frames(obs, 3) == [10, 10, 10] and _actions(obs, 3) == [0, 0, 0]
  obs, *_ = env.step(1)  # (1 + 1) / 4 * 255 = 127.5 -> 128
  assert _frames(obs, 3) == [10, 10, 11] and _actions(obs, 3) == [0, 0, 128]
  obs, *_ = env.step(3)
  obs, *_ = env.step(0)
  assert _frames(obs, 3) == [11, 12, 13] and _actions(obs, 3) == [128, 255, 64]
  # Planes are constant over the image.
  assert (obs[..., 3:] == obs[0, 0, 3:]).all()


def test_pixel_stack_reset_leaks_nothing_from_the_last_episode():
  env = wrappers.PixelStack(_Counter(), 2)
  env.reset()
  env.step(2)
  env.step(3)
  obs, _ = env.reset()
  assert _frames(obs, 2) == [20, 20] and _actions(obs, 2) == [0, 0]


def test_pixel_stack_colour_frames_and_no_action_planes():
  env = wrappers.PixelStack(_Counter(channels=2), 2)
  obs, _ = env.reset()
  obs, *_ = env.step(0)
  assert obs.shape == (2, 3, 2 * 2 + 2)
  assert list(obs[0, 0, :4]) == [10, 10, 11, 11] and _actions(obs, 2, 2) == [0, 64]
  plain = wrappers.PixelStack(_Counter(), 4, action_planes=False)
  assert plain.reset()[0].shape == (2, 3, 4) == plain.observation_space.shape


def test_pixel_stack_rejects_what_it_cannot_stack():
  with pytest.raises(ValueError, match="num_frames must be an integer >= 1"):
    wrappers.PixelStack(_Counter(), 0)
  with pytest.raises(TypeError, match="uint8 images"):
    wrappers.PixelStack(gym.make("CartPole-v1"), 2)
  # The old FrameStacking is unchanged: a new last axis.
  stacked = wrappers.FrameStacking(_Counter(), 3)
  assert stacked.reset()[0].shape == (2, 3, 3)


def test_make_atari_frames_and_no_sticky_actions():
  env = envs.make_atari("Pong", frame_stack=4)
  obs, _ = env.reset(seed=0)
  assert obs.shape == (96, 96, 8) and obs.dtype == np.uint8
  assert env.observation_space.shape == (96, 96, 8)
  assert env.unwrapped.ale.getFloat("repeat_action_probability") == 0.
  obs, *_ = env.step(2)
  assert _actions(obs, 4) == [0, 0, 0, int(round(255 * 3 / env.action_space.n))]
  sticky = envs.make_atari("ALE/Pong-v5", sticky_actions=True, grayscale=False, frame_stack=2)
  assert sticky.unwrapped.ale.getFloat("repeat_action_probability") == 0.25
  assert sticky.reset(seed=0)[0].shape == (96, 96, 3 * 2 + 2)


def test_make_atari_is_deterministic_for_a_seed():
  def rollout(seed):
    env = envs.make_atari("Breakout", frame_stack=1, action_planes=False)
    frames = [env.reset(seed=seed)[0]]
    for a in [1, 2, 3, 0] * 5:
      frames.append(env.step(a)[0])
    return np.stack(frames)
  np.testing.assert_array_equal(rollout(3), rollout(3))


def test_make_atari_refuses_unknown_games_and_explains_missing_packages(monkeypatch):
  with pytest.raises(ValueError, match="unknown Atari game 'NotAGame'"):
    envs.make_atari("NotAGame")
  monkeypatch.setitem(sys.modules, "ale_py", None)
  with pytest.raises(ImportError, match=r'pip install "muax\[atari\]"'):
    envs.make_atari("Pong")


def test_make_minatar_spaces_and_values():
  env = envs.make_minatar("breakout")
  obs, _ = env.reset(seed=0)
  assert env.observation_space == gym.spaces.Box(0, 255, (10, 10, 4), np.uint8)
  assert env.action_space == gym.spaces.Discrete(6)
  assert obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 255} and obs.max() == 255
  assert envs.make_minatar("breakout", minimal_action_set=True).action_space.n == 3
  assert envs.make("minatar:space_invaders").observation_space.shape[:2] == (10, 10)
  with pytest.raises(ValueError, match="unknown MinAtar game"):
    envs.make_minatar("pong")


def _minatar_rollout(seed, steps=300):
  env = envs.make_minatar("asterix")
  rng = np.random.default_rng(0)
  obs, _ = env.reset(seed=seed)
  out = [obs]
  for _ in range(steps):
    obs, r, terminated, truncated, _ = env.step(int(rng.integers(6)))
    out.append(obs)
    if terminated:
      out.append(env.reset()[0])
  return np.stack(out)


def test_make_minatar_seeding_is_deterministic():
  np.testing.assert_array_equal(_minatar_rollout(1), _minatar_rollout(1))
  assert not np.array_equal(_minatar_rollout(1), _minatar_rollout(2))


def test_make_minatar_explains_a_missing_package(monkeypatch):
  monkeypatch.setitem(sys.modules, "minatar", None)
  with pytest.raises(ImportError, match=r'pip install "muax\[minatar\]"'):
    envs.make_minatar("breakout")


def _tiny_model(num_actions, downsample, policy="gumbel"):
  return muax.MuZero(
      *nn.resnet_networks(num_actions, 5, channels=4, num_blocks=0, prediction_blocks=0,
                          dynamic_blocks=1, downsample=downsample, head_hidden=(8,)),
      policy=policy, support_size=5, optimizer=optax.adam(1e-3))


def _uint8_batch(env, model, buffer, episodes=2):
  tracer = muax.PNStep(3, 0.99, 0.5)
  for episode in range(episodes):
    obs, _ = env.reset(seed=episode)
    tracer.reset()
    trajectory = muax.Trajectory()
    for t in range(6):
      a = t % env.action_space.n
      next_obs, r, terminated, _, _ = env.step(a)
      tracer.add(obs, a, r, terminated or t == 5, v=0.,
                 pi=np.full(env.action_space.n, 1. / env.action_space.n))
      while tracer:
        trajectory.add(tracer.pop())
      if terminated:
        break
      obs = next_obs
    trajectory.finalize()
    buffer.add(trajectory, 1.)
  return buffer.sample(num_trajectory=2, sample_per_trajectory=1, k_steps=3)


def test_resnet_networks_train_on_uint8_minatar_frames():
  env = envs.make_minatar("breakout")
  model = _tiny_model(6, downsample=1)
  obs, _ = env.reset(seed=0)
  model.init(jax.random.PRNGKey(0), obs[None])
  assert model.representation(obs[None]).shape == (1, 10, 10, 4)
  a = model.act(jax.random.PRNGKey(1), obs, num_simulations=4)
  assert 0 <= int(a) < 6
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=0, obs_dtype=np.uint8)
  batch = _uint8_batch(env, model, buffer)
  assert batch.obs.dtype == np.uint8 and batch.obs.shape[-3:] == (10, 10, 4)
  assert set(np.unique(batch.obs)) <= {0, 255}  # the frames themselves, not rescaled
  before = jax.tree.map(np.array, model.params)
  metrics = model.update(batch)
  assert np.isfinite(metrics["loss"])
  changed = jax.tree.map(lambda x, y: not np.array_equal(x, y), before, model.params)
  assert any(jax.tree.leaves(changed))


def test_resnet_networks_downsample_atari_frames_to_6x6():
  model = _tiny_model(4, downsample="muzero", policy="muzero")
  obs = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 8), dtype=np.uint8)
  model.init(jax.random.PRNGKey(0), obs)
  assert model.representation(obs).shape == (2, 6, 6, 4)  # (acting: the smoke test)
  with pytest.raises(ValueError, match="downsample must be a stride >= 1"):
    nn.resnet_networks(4, 5, downsample=0)
  with pytest.raises(ValueError, match="support_size must be a positive integer"):
    nn.resnet_networks(4, 0)


def test_short_fit_on_minatar(tmp_path):
  model = _tiny_model(6, downsample=1)
  buffer = muax.TrajectoryReplayBuffer(20, random_seed=0, obs_dtype=np.uint8)
  result = muax.train.run(
      model, env=envs.make_minatar("breakout"), test_env=envs.make_minatar("breakout"),
      tracer=muax.PNStep(3, 0.99, 0.5), buffer=buffer, max_episodes=2, test_interval=2,
      num_test_episodes=1, max_training_steps=4, num_simulations=2, k_steps=3,
      buffer_warm_up=1, num_trajectory=2, sample_per_trajectory=1,
      num_update_per_episode=2, tensorboard_dir=str(tmp_path / "tb"),
      model_save_path=str(tmp_path / "models"), random_seed=0, progress=False)
  assert result.training_steps == 4 and result.env_steps > 0
  assert len(result.tests) == 1 and np.isfinite(result.tests[0].test_return)
  assert buffer.sample(num_trajectory=1, k_steps=2).obs.dtype == np.uint8


def test_cli_builds_resnets_for_pixel_envs():
  from muax import cli
  env = envs.make("minatar:breakout")
  model = cli.build_model(cli.TrainConfig(env_id="minatar:breakout"), env.action_space,
                          observation_space=env.observation_space)
  obs, _ = env.reset(seed=0)
  model.init(jax.random.PRNGKey(0), obs[None])
  assert model.representation(obs[None]).ndim == 4  # planes, not an MLP embedding


def _atari100k():
  return scripts.load("benchmarks/atari100k.py", "atari100k")


def test_human_normalised_scores():
  bench = _atari100k()
  assert len(bench.SCORES) == 26
  assert bench.human_normalized("Breakout", 1.7) == 0.
  assert bench.human_normalized("Breakout", 30.5) == pytest.approx(1.)
  assert bench.human_normalized("Pong", -20.7 + 0.5 * 35.3) == pytest.approx(0.5)
  # Boxing: random 0.1, human 12.1, so 3.1 is 0.25; median 0.25, mean (0 + 1 + 0.25) / 3.
  text = bench.report({"Breakout": 1.7, "Pong": 14.6, "Boxing": 3.1})
  assert "median 0.250, mean 0.417" in text
  with pytest.raises(ValueError, match="no random/human scores"):
    bench.human_normalized("Tetris", 1.)


def test_atari100k_smoke_runs_end_to_end(tmp_path):
  out = subprocess.run([sys.executable, os.path.abspath(os.path.join(ROOT, "benchmarks",
                                                                     "atari100k.py")),
                        "--smoke", "--games", "Pong"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  assert '"agent_steps": 200' in out.stdout
  assert "Pong" in out.stdout and "human-normalised score over 1 game(s): median" in out.stdout
