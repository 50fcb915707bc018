"""Gymnasium wrappers: training statistics and frame stacking."""
import collections
import time
from typing import Optional

import gymnasium as gym
import numpy as np

__all__ = ["FrameStacking", "TrainMonitor"]


class TrainMonitor(gym.Wrapper):
  """Tracks episode return, length and speed; prints and logs them.

  Args:
    env: the environment to wrap.
    tensorboard_dir: write `episode/return` and `episode/length` here when set.
    log_interval: print a line every this many episodes (0: never).
  """

  def __init__(self, env, tensorboard_dir: Optional[str] = None, log_interval: int = 10):
    super().__init__(env)
    if isinstance(log_interval, bool) or not isinstance(log_interval, (int, np.integer)) \
        or log_interval < 0:
      raise ValueError("log_interval must be an integer >= 0 (0: never print), got "
                       f"log_interval={log_interval!r}")
    self.log_interval = log_interval
    self.episode = 0
    self.total_steps = 0
    self.episode_return = 0.
    self.episode_length = 0
    self.returns = collections.deque(maxlen=100)
    self._start = time.perf_counter()
    self._writer = None
    if tensorboard_dir is not None:
      from tensorboardX import SummaryWriter
      self._writer = SummaryWriter(tensorboard_dir)

  def reset(self, **kwargs):
    self.episode_return, self.episode_length = 0., 0
    return self.env.reset(**kwargs)

  def step(self, action):
    obs, r, terminated, truncated, info = self.env.step(action)
    self.episode_return += float(r)
    self.episode_length += 1
    self.total_steps += 1
    if terminated or truncated:
      self._end_episode()
    return obs, r, terminated, truncated, info

  def _end_episode(self):
    self.episode += 1
    self.returns.append(self.episode_return)
    if self._writer is not None:
      self._writer.add_scalar("episode/return", self.episode_return, self.episode)
      self._writer.add_scalar("episode/length", self.episode_length, self.episode)
      self._writer.flush()
    if self.log_interval and self.episode % self.log_interval == 0:
      speed = self.total_steps / max(time.perf_counter() - self._start, 1e-9)
      print(f"episode {self.episode}: return {self.episode_return:.1f}, "
            f"mean(100) {np.mean(self.returns):.1f}, length {self.episode_length}, "
            f"{speed:.0f} steps/s")

  def close(self):
    if self._writer is not None:
      self._writer.close()
    super().close()


class FrameStacking(gym.ObservationWrapper):
  """Stacks the last `num_frames` observations on a new last axis.

  Observations `[...]` become `[..., num_frames]` (for images `[H, W, C]`
  this gives `[H, W, C, num_frames]`; reshape in the network as needed).
  """

  def __init__(self, env, num_frames: int):
    super().__init__(env)
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) \
        or num_frames < 1:
      raise ValueError(f"num_frames must be an integer >= 1, got num_frames={num_frames!r}")
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box):
      raise TypeError(f"FrameStacking stacks array observations (a Box space), but the "
                      f"observation_space is {space}")
    self.num_frames = int(num_frames)
    self._frames = collections.deque(maxlen=self.num_frames)
    low = np.repeat(np.asarray(space.low)[..., None], self.num_frames, axis=-1)
    high = np.repeat(np.asarray(space.high)[..., None], self.num_frames, axis=-1)
    self.observation_space = gym.spaces.Box(low=low, high=high, dtype=space.dtype)

  def reset(self, **kwargs):
    obs, info = self.env.reset(**kwargs)
    self._frames.clear()
    for _ in range(self.num_frames):
      self._frames.append(obs)
    return self._stacked(), info

  def observation(self, observation):
    self._frames.append(observation)
    return self._stacked()

  def _stacked(self):
    return np.stack(self._frames, axis=-1)
