"""`FitConfig`: `fit`'s settings, checked once and frozen.

`fit` and `run` bind their arguments to one signature (`fit`'s: the defaults
live there and nowhere else); `FitConfig.from_arguments` checks them, each
error naming its argument, and the loop reads only the frozen result. The
objects `fit` is given (environments, tracer, buffer, opponent, reanalysis)
are not settings and stay outside it.
"""
import dataclasses
import os
from typing import Any, Callable, Optional, Union

import gymnasium as gym
import numpy as np

from muax import acting
from muax import checks

__all__ = ["COMPONENTS", "FitConfig", "check_components", "default_temperature_fn"]

# `fit`'s arguments that are objects to run with, not settings.
COMPONENTS = ("model", "env_id", "env", "test_env", "tracer", "buffer", "opponent",
              "reanalyze")


def default_temperature_fn(max_training_steps: int, training_steps: int) -> float:
  """1.0 for the first half of training, 0.5 to three quarters, then 0.25."""
  if training_steps < 0.5 * max_training_steps:
    return 1.
  if training_steps < 0.75 * max_training_steps:
    return 0.5
  return 0.25


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """Every setting of one `fit` run (see `fit` for their meaning)."""
  max_episodes: int
  test_interval: int
  num_test_episodes: int
  max_training_steps: int
  save_every_n_epochs: int
  num_simulations: int
  k_steps: int
  buffer_warm_up: int
  num_trajectory: int
  sample_per_trajectory: int
  name: Optional[str]
  tensorboard_dir: Optional[str]
  model_save_path: Optional[str]
  save_name: str  # "model_params" when fit's is None
  random_seed: int
  temperature_fn: Callable  # default_temperature_fn when fit's is None
  log_all_metrics: bool
  num_update_per_episode: int
  target_return: Optional[float]
  progress: bool
  max_episode_steps: Optional[int]
  num_envs: int
  vectorization: str
  resume: Union[bool, str, os.PathLike, None]
  checkpoint_interval: float
  keep_checkpoints: int
  max_consecutive_skipped: int

  @classmethod
  def from_arguments(cls, **settings: Any) -> "FitConfig":
    """The checked config of `fit`'s settings (every field, no component).

    Raises:
      TypeError, ValueError: a setting of the wrong kind or out of range; the
        message names it.
    """
    for name in ("max_episodes", "test_interval", "num_test_episodes",
                 "max_training_steps", "save_every_n_epochs", "num_simulations", "k_steps",
                 "num_trajectory", "sample_per_trajectory", "num_envs", "keep_checkpoints",
                 "max_consecutive_skipped"):
      checks.positive_int(name, settings[name])
    for name in ("buffer_warm_up", "num_update_per_episode"):
      checks.positive_int(name, settings[name], allow_zero=True)
    _check_modes(settings["vectorization"], settings["checkpoint_interval"],
                 settings["target_return"], settings["resume"])
    for name in ("name", "tensorboard_dir", "model_save_path"):
      checks.path(name, settings[name])
    if settings["save_name"] is not None:
      checks.file_name("save_name", settings["save_name"])
    checks.seed("random_seed", settings["random_seed"])
    checks.function("temperature_fn", settings["temperature_fn"],
                    "fn(max_training_steps=, training_steps=) -> float")
    checks.flag("log_all_metrics", settings["log_all_metrics"])
    checks.flag("progress", settings["progress"])
    checks.positive_int("max_episode_steps", settings["max_episode_steps"], allow_none=True)
    return cls(**dict(
        settings, save_name=settings["save_name"] or "model_params",
        temperature_fn=settings["temperature_fn"] or default_temperature_fn,
        checkpoint_interval=float(settings["checkpoint_interval"])))

  def temperature(self, training_steps: int) -> float:
    """The acting temperature after `training_steps` updates."""
    return float(self.temperature_fn(max_training_steps=self.max_training_steps,
                                     training_steps=training_steps))


def check_components(*, env_id: Optional[str],
                     test_env: Optional[Union[gym.Env, gym.vector.VectorEnv]],
                     tracer: Any, buffer: Any) -> None:
  """The checks of `fit`'s objects that need no model: each names the argument."""
  if env_id is not None and not isinstance(env_id, str):
    raise TypeError(f"env_id must be a registered gymnasium id such as 'CartPole-v1', "
                    f"got env_id={env_id!r}")
  if test_env is not None and not isinstance(test_env, (gym.Env, gym.vector.VectorEnv)):
    raise TypeError(f"test_env must be a gymnasium environment, got test_env={test_env!r}")
  for what, value, methods, kind in (
      ("tracer", tracer, ("reset", "add", "pop"), "an n-step tracer (muax.PNStep)"),
      ("buffer", buffer, ("add", "sample"), "a replay buffer (muax.TrajectoryReplayBuffer)")):
    if value is not None and not all(callable(getattr(value, m, None)) for m in methods):
      raise TypeError(f"{what} must be {kind} or None, got {what}={value!r}")


def _check_modes(vectorization, checkpoint_interval, target_return, resume):
  if vectorization not in acting.VECTORIZATION_MODES:
    raise ValueError(f"vectorization must be one of {acting.VECTORIZATION_MODES}, "
                     f"got {vectorization!r}")
  if isinstance(checkpoint_interval, bool) or not isinstance(
      checkpoint_interval, (int, float, np.number)) or not checkpoint_interval >= 0:
    raise ValueError("checkpoint_interval must be a number of seconds >= 0, got "
                     f"checkpoint_interval={checkpoint_interval!r}")
  if target_return is not None and (
      isinstance(target_return, bool) or not isinstance(target_return, (int, float, np.number))
      or np.isnan(target_return)):
    raise ValueError(f"target_return must be a number or None, got {target_return!r}")
  if not isinstance(resume, (bool, str, os.PathLike)) and resume is not None:
    raise TypeError("resume must be True, False or the path of a run folder, got "
                    f"{type(resume).__name__}")
