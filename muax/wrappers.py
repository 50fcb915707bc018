"""Gymnasium wrappers: training statistics, frame stacking, action planes."""
import collections
import time
from typing import Any, Optional, SupportsFloat, Tuple

import gymnasium as gym
import numpy as np

from muax import checks

__all__ = ["FrameStacking", "PixelStack", "TrainMonitor"]


class TrainMonitor(gym.Wrapper):
  """Tracks episode return, length and speed; prints and logs them.

  Args:
    env: the environment to wrap.
    tensorboard_dir: write `episode/return` and `episode/length` here when set.
    log_interval: print a line every this many episodes (0: never).
  """

  def __init__(self, env, tensorboard_dir: Optional[str] = None, log_interval: int = 10):
    super().__init__(env)
    checks.integer("log_interval", log_interval, low=0, what="an integer >= 0 (0: never print)")
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

  def reset(self, **kwargs: Any) -> Tuple[Any, dict]:
    self.episode_return, self.episode_length = 0., 0
    return self.env.reset(**kwargs)

  def step(self, action: Any) -> Tuple[Any, SupportsFloat, bool, bool, dict]:
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

  def close(self) -> None:
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
    checks.integer("num_frames", num_frames, what="an integer >= 1")
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box):
      raise TypeError(f"FrameStacking stacks array observations (a Box space), but the "
                      f"observation_space is {space}")
    self.num_frames = int(num_frames)
    self._frames = collections.deque(maxlen=self.num_frames)
    low = np.repeat(np.asarray(space.low)[..., None], self.num_frames, axis=-1)
    high = np.repeat(np.asarray(space.high)[..., None], self.num_frames, axis=-1)
    self.observation_space = gym.spaces.Box(low=low, high=high, dtype=space.dtype)

  def reset(self, **kwargs: Any) -> Tuple[np.ndarray, dict]:
    obs, info = self.env.reset(**kwargs)
    self._frames.clear()
    for _ in range(self.num_frames):
      self._frames.append(obs)
    return self._stacked(), info

  def observation(self, observation: np.ndarray) -> np.ndarray:
    self._frames.append(observation)
    return self._stacked()

  def _stacked(self):
    return np.stack(self._frames, axis=-1)


class PixelStack(gym.Wrapper):
  """Stacks the last `num_frames` image frames and the actions that led to them.

  uint8 frames `[H, W]` or `[H, W, C]` become one NHWC observation
  `[H, W, num_frames * C + num_frames]` (uint8): the frames oldest first along
  the channel axis, then (with `action_planes`) one constant plane per frame
  holding the action that led to it, as in MuZero's Atari input
  (Schrittwieser et al., 2020). Action `a` of `A` is encoded as
  `round(255 * (a + 1) / A)`, so every action is non-zero and 0 means "no
  action": the frame came from `reset`. After `reset` the history is the
  first frame repeated with zero action planes, so nothing of the previous
  episode leaks into the next.

  Args:
    env: an environment with uint8 image observations (a `Box` of dtype
      uint8, shape `[H, W]` or `[H, W, C]`) and, with `action_planes`,
      `Discrete` actions.
    num_frames: frames (and actions) kept.
    action_planes: append the action planes (False: frames only).

  Raises:
    TypeError: the observation space is not a uint8 image `Box`, or the
      action space is not `Discrete` while `action_planes` is set.
    ValueError: `num_frames` is not a positive integer.
  """

  def __init__(self, env, num_frames: int = 4, *, action_planes: bool = True):
    super().__init__(env)
    checks.integer("num_frames", num_frames, what="an integer >= 1")
    space = env.observation_space
    if not (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
            and len(space.shape) in (2, 3)):
      raise TypeError("PixelStack stacks uint8 images [H, W] or [H, W, C] (a Box of dtype "
                      f"uint8), but the observation_space is {space}")
    if action_planes and not isinstance(env.action_space, gym.spaces.Discrete):
      raise TypeError("PixelStack's action planes encode Discrete actions, but the "
                      f"action_space is {env.action_space}; pass action_planes=False")
    self.num_frames = int(num_frames)
    self.action_planes = bool(action_planes)
    height, width = space.shape[:2]
    self._channels = space.shape[2] if len(space.shape) == 3 else 1
    depth = self.num_frames * self._channels + (self.num_frames if self.action_planes else 0)
    self.observation_space = gym.spaces.Box(0, 255, (height, width, depth), np.uint8)
    self._frames = collections.deque(maxlen=self.num_frames)
    self._actions = collections.deque(maxlen=self.num_frames)

  def reset(self, **kwargs: Any) -> Tuple[np.ndarray, dict]:
    obs, info = self.env.reset(**kwargs)
    frame = self._frame(obs)
    self._frames.clear()
    self._actions.clear()
    for _ in range(self.num_frames):
      self._frames.append(frame)
      self._actions.append(0)
    return self._stacked(), info

  def step(self, action: int) -> Tuple[np.ndarray, SupportsFloat, bool, bool, dict]:
    obs, reward, terminated, truncated, info = self.env.step(action)
    self._frames.append(self._frame(obs))
    self._actions.append(self.encode_action(action))
    return self._stacked(), reward, terminated, truncated, info

  def encode_action(self, action: int) -> int:
    """The uint8 value of `action`'s plane: `round(255 * (a + 1) / A)`."""
    if not self.action_planes:
      return 0
    space = self.env.action_space
    return int(round(255 * (int(action) - int(space.start) + 1) / int(space.n)))

  def _frame(self, obs):
    frame = np.asarray(obs, np.uint8)
    return frame[..., None] if frame.ndim == 2 else frame

  def _stacked(self):
    parts = list(self._frames)
    if self.action_planes:
      height, width = parts[0].shape[:2]
      parts.append(np.broadcast_to(np.asarray(self._actions, np.uint8),
                                   (height, width, self.num_frames)))
    return np.concatenate(parts, axis=-1)
