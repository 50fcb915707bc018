"""`evaluate`: the one evaluator, for one environment or a vector of them.

`fit` tests with it between episodes, `muax.test.test` is it for one
environment, and a Ray evaluator or a compiled loop's host side can call it
the same way: it reads a model and environments, and writes nothing.
"""
from typing import Any, List, Optional, Union

import gymnasium as gym
import numpy as np

from muax import acting

__all__ = ["evaluate"]


def evaluate(model: Any, env: Union[gym.Env, gym.vector.VectorEnv], keys: acting.KeyStream,
             num_episodes: int, *, num_simulations: int, temperature: float = 0.,
             seed: Optional[int] = None,
             max_episode_steps: Optional[int] = None) -> List[float]:
  """The returns of `num_episodes` episodes played at `temperature` (0: greedy).

  With one environment, episodes are played one after another; `seed` seeds
  the first reset and later resets continue its stream. With a vector
  environment, the sub-environments' episodes are searched as one batch;
  only the episodes that begin at a reset count (so short episodes are not
  favoured): ceil(num_episodes / N) rounds of N episodes, round r seeded
  `seed + r * N`. Arguments are those of `Actor` and `run_episode`.
  """
  if isinstance(env, gym.vector.VectorEnv):
    if max_episode_steps is not None:
      raise ValueError("max_episode_steps applies to a single environment; wrap the "
                       "vector environment's sub-environments in a TimeLimit instead")
    return _vector_returns(model, env, keys, num_episodes, num_simulations=num_simulations,
                           temperature=temperature, seed=seed)
  returns = []
  for i in range(num_episodes):
    episode = acting.run_episode(model, env, keys, num_simulations=num_simulations,
                                 temperature=temperature,
                                 seed=seed if (i == 0 and seed is not None) else None,
                                 max_episode_steps=max_episode_steps)
    returns.append(episode.episode_return)
  return returns


def _vector_returns(model, envs, keys, num_episodes, *, num_simulations, temperature,
                    seed) -> List[float]:
  acting.check_vector_env(envs, model)
  n = envs.num_envs
  offset = acting.action_offset(envs.single_action_space)
  returns = []
  while len(returns) < num_episodes:
    obs, infos = envs.reset(seed=None if seed is None else seed + len(returns))
    total = np.zeros(n)
    running = np.ones(n, bool)
    while running.any():
      actions = model.act(keys(), np.asarray(obs), obs_from_batch=True,
                          num_simulations=num_simulations, temperature=temperature,
                          invalid_actions=acting.invalid_actions(infos, n))
      obs, rewards, terminated, truncated, infos = envs.step(actions + offset)
      rewards, terminated, truncated = acting.checked_vector_step(
          np.where(running, rewards, 0.), terminated, truncated, n, "(vector test)")
      total += rewards
      running &= ~(terminated | truncated)
    returns.extend(total.tolist())
  return returns[:num_episodes]
