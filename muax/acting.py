"""Playing episodes with a model: the acting piece shared by `fit` and `test`.

Acting exchanges only observations, keys and params-bearing models with the
rest of the library, so it can later move into actor processes or vectorised
collectors unchanged in meaning.
"""
import dataclasses
from typing import Optional

import gymnasium as gym
import jax
import numpy as np

from muax.replay_buffer import Trajectory

# Used only when an environment has no time limit of its own: an episode this
# long is treated as truncated, so `fit` and `test` always finish.
DEFAULT_MAX_EPISODE_STEPS = 10_000


class KeyStream:
  """Hands out PRNG keys split in bulk (one device call per 1024 keys)."""

  def __init__(self, key, block: int = 1024):
    self._key = key
    self._block = block
    self._keys = []

  def __call__(self):
    if not self._keys:
      self._key, sub = jax.random.split(self._key)
      block = jax.random.split(sub, self._block)
      if jax.dtypes.issubdtype(block.dtype, jax.dtypes.prng_key):
        block = jax.random.key_data(block)
      self._keys = list(np.asarray(block))
    return self._keys.pop()


@dataclasses.dataclass
class Episode:
  """What one episode produced."""
  episode_return: float
  length: int
  trajectory: Optional[Trajectory] = None


def check_env(env, what: str = "env"):
  """Raises ValueError unless the environment has a discrete action space."""
  if not isinstance(env.action_space, gym.spaces.Discrete):
    raise ValueError(f"muax plans over discrete actions, but {what}.action_space is "
                     f"{env.action_space}; wrap the environment to discretise it")


def step_limit(env, max_episode_steps: Optional[int] = None) -> int:
  """The step cap for one episode: given, else the env's spec, else a default."""
  if max_episode_steps is not None:
    return int(max_episode_steps)
  spec_limit = getattr(getattr(env, "spec", None), "max_episode_steps", None)
  return int(spec_limit) if spec_limit else DEFAULT_MAX_EPISODE_STEPS


def run_episode(model, env, keys: KeyStream, *, num_simulations: int,
                temperature: float, seed: Optional[int] = None, tracer=None,
                max_episode_steps: Optional[int] = None) -> Episode:
  """Plays one episode; with a tracer, also records it as a Trajectory.

  Termination ends the n-step returns; truncation (a time limit, or the step
  cap) bootstraps them from the search value of the final observation.
  """
  obs, _ = env.reset(seed=seed)
  limit = step_limit(env, max_episode_steps)
  trajectory = None
  if tracer is not None:
    tracer.reset()
    trajectory = Trajectory()
  total, steps = 0., 0
  while True:
    if tracer is None:
      a = model.act(keys(), obs, num_simulations=num_simulations, temperature=temperature)
    else:
      a, pi, v = model.act(keys(), obs, with_pi=True, with_value=True,
                           num_simulations=num_simulations, temperature=temperature)
    next_obs, r, terminated, truncated, _ = env.step(a)
    steps += 1
    total += float(r)
    truncated = bool(truncated) or steps >= limit
    if tracer is not None:
      cut = truncated and not terminated
      bootstrap = None
      if cut:
        _, bootstrap = model.act(keys(), next_obs, with_value=True,
                                 num_simulations=num_simulations, temperature=0.)
      tracer.add(np.array(obs), a, r, bool(terminated), v, pi, truncated=cut,
                 bootstrap_value=bootstrap)
      while tracer:
        trajectory.add(tracer.pop())
    if terminated or truncated:
      break
    obs = next_obs
  if trajectory is not None:
    trajectory.finalize()
  return Episode(total, steps, trajectory)
