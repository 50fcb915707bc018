"""The networks `muax train` builds: `build_model(config, num_actions)`.

Shared by the host loop's command line (`muax.cli`) and the compiled loop's
(`muax.cli_compiled`); `config` is a `muax.cli.TrainConfig`.
"""
from typing import Any, Optional, Union

import gymnasium as gym
import numpy as np

from muax import variants

__all__ = ["build_model", "is_image", "loss_options", "policies"]


def build_model(config: Any, num_actions: Union[int, gym.spaces.Space], *,
                two_player: bool = False,
                observation_space: Optional[gym.spaces.Space] = None) -> Any:
  """The MuZero the command line trains: MLPs, or residual conv nets for images.

  `num_actions` is the number of discrete actions, or the action space (a
  Box for `policy='sampled'`). An `observation_space` of uint8 images
  `[H, W, C]` gets `nn.resnet_networks` (downsampled MuZero-style from 32
  pixels up, e.g. Atari's 96x96; not at all below, e.g. MinAtar's 10x10).
  """
  import muax
  from muax import nn
  space = num_actions if isinstance(num_actions, gym.spaces.Space) else None
  if space is not None:
    if config.policy == "sampled":
      if not isinstance(space, gym.spaces.Box):
        raise SystemExit(f"muax train: policy sampled needs a Box action space, got {space}")
    elif not isinstance(space, gym.spaces.Discrete):
      raise SystemExit(f"muax train: {config.env_id} has action space {space}; policy "
                       f"{config.policy} plans over discrete actions (use --policy sampled "
                       "for continuous ones)")
    else:
      num_actions = int(space.n)
  size = 2 * config.support_size + 1
  hidden = (config.hidden,)
  if config.policy == "sampled":  # measured on Pendulum-v1 (benchmarks/pendulum.py)
    gradient_transform = muax.model.optimizer(
        init_value=0., peak_value=config.learning_rate, end_value=config.end_learning_rate,
        warmup_steps=100, transition_steps=2000)
  else:
    gradient_transform = muax.model.optimizer(
        init_value=config.learning_rate, peak_value=config.learning_rate,
        end_value=config.end_learning_rate, warmup_steps=5000, transition_steps=5000)
  if is_image(observation_space):
    if "images" not in variants.get(config.policy).supports:
      raise SystemExit(f"muax train: image observations are trained with policy "
                       f"{policies('images')}, not {config.policy}")
    downsample = "muzero" if min(observation_space.shape[:2]) >= 32 else 1
    return muax.MuZero(
        *nn.resnet_networks(num_actions, config.support_size, channels=32, num_blocks=1,
                            prediction_blocks=0, dynamic_blocks=1, downsample=downsample,
                            head_hidden=hidden),
        policy=config.policy, optimizer=gradient_transform, discount=config.discount,
        support_size=config.support_size, two_player=two_player)
  common = dict(embedding_dim=config.embedding_dim, hidden=hidden,
                support_size=config.support_size, discount=config.discount,
                optimizer=gradient_transform)
  if config.policy == "stochastic":
    from muax import stochastic
    return stochastic.build_model(num_actions, num_chance_outcomes=config.num_chance_outcomes,
                                  **common)
  if config.policy == "sampled":
    from muax import sampled
    return sampled.build_model(space, num_samples=config.num_samples, **common)
  return muax.MuZero(
      nn._init_representation_func(nn.Representation, config.embedding_dim, hidden=hidden),
      nn._init_prediction_func(nn.Prediction, num_actions, size, hidden=hidden),
      nn._init_dynamic_func(nn.Dynamic, config.embedding_dim, num_actions, size, hidden=hidden),
      policy=config.policy, optimizer=gradient_transform, discount=config.discount,
      support_size=config.support_size, two_player=two_player,
      **loss_options(config))


def loss_options(config: Any) -> dict:
  """`MuZero` keywords for `--consistency` and `--value-prefix`."""
  import muax
  if config.value_prefix:
    return dict(value_prefix=True, consistency_weight=config.consistency)
  if config.consistency:
    return dict(loss_fn=muax.loss.make_loss_fn(consistency_weight=config.consistency))
  return {}


def is_image(space: Any) -> bool:
  return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
          and len(space.shape) == 3)


def policies(*options: str) -> str:
  """'muzero or gumbel': the policies that support every one of `options`."""
  names = [p for p in variants.names() if set(options) <= set(variants.get(p).supports)]
  return " or ".join(names)
