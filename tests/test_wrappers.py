import gymnasium as gym
import numpy as np
import pytest

from muax import wrappers
from tb_events import read_scalars


def test_frame_stacking():
  env = wrappers.FrameStacking(gym.make("CartPole-v1"), 3)
  obs, _ = env.reset(seed=0)
  assert obs.shape == (4, 3) and env.observation_space.shape == (4, 3)
  np.testing.assert_array_equal(obs[:, 0], obs[:, 2])  # reset fills with the first frame
  first = obs[:, 2].copy()
  obs, *_ = env.step(0)
  np.testing.assert_array_equal(obs[:, 1], first)  # frames shift left
  assert env.observation_space.contains(obs.astype(np.float32))
  with pytest.raises(ValueError, match="num_frames"):
    wrappers.FrameStacking(gym.make("CartPole-v1"), 0)


def test_train_monitor_counts_and_logs(tmp_path, capsys):
  env = wrappers.TrainMonitor(gym.make("CartPole-v1"), tensorboard_dir=str(tmp_path),
                              log_interval=2)
  lengths = []
  for episode in range(2):
    env.reset(seed=episode)
    done, steps = False, 0
    while not done:
      _, _, terminated, truncated, _ = env.step(0)
      done, steps = terminated or truncated, steps + 1
    lengths.append(steps)
  env.close()
  assert env.episode == 2 and env.total_steps == sum(lengths)
  assert "episode 2: return" in capsys.readouterr().out
  scalars = read_scalars(str(tmp_path))
  assert [v for _, v in scalars["episode/length"]] == lengths
