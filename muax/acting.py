"""Playing episodes with a model: the acting piece shared by `fit` and `test`.

Acting exchanges only observations, keys and params-bearing models with the
rest of the library, so it can later move into actor processes or vectorised
collectors unchanged in meaning.
"""
import copy
import dataclasses
from typing import Any, Callable, List, Optional, Tuple

import gymnasium as gym
import jax
import numpy as np

from muax.gym_envs import ASYNC_STEP_SECONDS
from muax.gym_envs import DEFAULT_MAX_EPISODE_STEPS
from muax.gym_envs import VECTORIZATION_MODES
from muax.gym_envs import action_offset
from muax.gym_envs import check_action_space
from muax.gym_envs import check_env
from muax.gym_envs import check_observation_space
from muax.gym_envs import check_vector_env
from muax.gym_envs import checked_step
from muax.gym_envs import checked_vector_step
from muax.gym_envs import env_name
from muax.gym_envs import invalid_actions
from muax.gym_envs import legal_mask
from muax.gym_envs import make_vector_env
from muax.gym_envs import space_signature
from muax.gym_envs import step_limit
from muax.replay_buffer import Trajectory

# The environment helpers are re-exported: `acting` is where the loop finds them.
__all__ = [
    "ASYNC_STEP_SECONDS", "Actor", "DEFAULT_MAX_EPISODE_STEPS", "Episode", "KeyStream",
    "Stopped", "VECTORIZATION_MODES", "VectorCollector", "action_offset", "check_action_space",
    "check_env", "check_observation_space", "check_vector_env", "checked_step",
    "checked_vector_step", "env_name", "invalid_actions", "legal_mask", "make_vector_env",
    "run_episode", "space_signature", "step_limit",
]


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

  def state(self) -> Tuple[np.ndarray, np.ndarray]:
    """`(key, spare keys [n, *key.shape])` as uint32 arrays: enough to continue."""
    key = self._key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
      key = jax.random.key_data(key)
    key = np.asarray(key, np.uint32)
    spare = (np.stack(self._keys).astype(np.uint32) if self._keys
             else np.zeros((0,) + key.shape, np.uint32))
    return key, spare

  def set_state(self, key: np.ndarray, spare: np.ndarray) -> None:
    """Continues the stream saved by `state` (raw keys of this JAX's PRNG)."""
    key, spare = np.asarray(key, np.uint32), np.asarray(spare, np.uint32)
    expected = tuple(jax.random.key_data(jax.random.key(0)).shape)
    if key.shape != expected or spare.shape[1:] != expected:
      raise ValueError(f"a key stream state is a key {list(expected)} and spare keys "
                       f"[n, {', '.join(map(str, expected))}] for this JAX's PRNG, got "
                       f"shapes {key.shape} and {spare.shape}")
    self._key = jax.numpy.asarray(key)
    self._keys = list(spare)


class Stopped(Exception):
  """Raised inside an episode when the caller asked to stop (Ctrl+C, SIGTERM)."""


@dataclasses.dataclass
class Episode:
  """What one episode produced."""
  episode_return: float
  length: int
  trajectory: Optional[Trajectory] = None


class Actor:
  """The one step loop: plays 1..N environments, one batched search per step.

  `envs` is a gymnasium vector environment (`make_vector_env`; autoreset
  `SAME_STEP`) or a single `gymnasium.Env`, played as a batch of one. Each
  environment has its own tracer (a copy of `tracer` for a vector
  environment, `tracer` itself for a single one) and its own trajectory;
  finished episodes come back from `step` in the order they finished.

  Termination ends the n-step returns; truncation (a time limit, or the step
  cap of a single environment) bootstraps them from the greedy search value
  of the final observation (one extra batched search, only on steps where
  some episode was truncated). Legal-action masks in `info["action_mask"]`
  (1 = legal, gymnasium's convention) restrict every search. Without a
  tracer only returns and lengths are kept (evaluation).

  A vector environment is reset once, here, and runs on (autoreset); its next
  search is dispatched before a step's tracer bookkeeping, so the two
  overlap. A single environment is reset at each `run_episode`, with that
  episode's seed, and searches at the start of each step.

  Args:
    model: the `muax.MuZero` that searches (`params` of `step` may replace
      its parameters: an actor's copy that lags the learner).
    envs: a vector environment or one environment.
    keys: the `KeyStream` every search draws its key from.
    num_simulations: search simulations per decision.
    tracer: records episodes as trajectories (None: evaluation).
    seed: the vector environment's first reset.
    max_episode_steps: a single environment's step cap (default: its
      spec's, else `DEFAULT_MAX_EPISODE_STEPS`).
  """

  def __init__(self, model, envs, keys: KeyStream, *, num_simulations: int, tracer=None,
               seed: Optional[int] = None, max_episode_steps: Optional[int] = None):
    self.model, self.keys, self.num_simulations = model, keys, num_simulations
    self.vectorized = isinstance(envs, gym.vector.VectorEnv)
    if self.vectorized:
      check_vector_env(envs, model)
      self.envs, self._limit = _VectorEnv(envs), None
      self._offset = action_offset(envs.single_action_space)
    else:
      self.envs, self._limit = _OneEnv(envs), step_limit(envs, max_episode_steps)
      self._offset = action_offset(envs.action_space)
    self.num_envs = self.envs.num_envs
    if tracer is None:
      self._tracers = None
    else:
      self._tracers = ([copy.deepcopy(tracer) for _ in range(self.num_envs)]
                       if self.vectorized else [tracer])
    self.env_steps = 0
    self._pending = None  # (observations, their masks, their search in flight)
    if self.vectorized:
      self.reset(seed)

  def reset(self, seed: Optional[int] = None) -> None:
    """Starts every environment afresh (`envs.reset(seed=seed)`)."""
    self._obs, infos = self.envs.reset(seed=seed)
    self._invalid = invalid_actions(infos, self.num_envs)
    self._pending = None
    self._returns = np.zeros(self.num_envs)
    self._lengths = np.zeros(self.num_envs, np.int64)
    self._trajectories = None
    if self._tracers is not None:
      for t in self._tracers:
        t.reset()
      self._trajectories = [Trajectory() for _ in range(self.num_envs)]

  def run_episode(self, temperature: float, *, seed: Optional[int] = None, params: Any = None,
                  stop: Optional[Callable[[], bool]] = None) -> Episode:
    """Resets and plays one episode of a single environment at `temperature`.

    `stop`, checked before every step, abandons the episode (raises `Stopped`).
    """
    self.reset(seed)
    while True:
      if stop is not None and stop():
        raise Stopped()
      finished = self.step(temperature, params)
      if finished:
        return finished[0]

  def step(self, temperature: float, params: Any = None) -> List[Episode]:
    """Advances every environment by one step; returns the episodes that ended.

    `params` (default: the model's own) are the parameters searched with.
    """
    if self._pending is None:
      self._dispatch(temperature, params)
    obs, invalid, packed = self._pending
    self._pending = None
    actions, values, pis, extras = self.model.unpack(np.asarray(packed))
    lengths = self._lengths + 1
    next_obs, rewards, terminated, truncated, infos = self.envs.step(
        actions + self._offset if self._offset else actions, lengths)
    if self._limit is not None:
      truncated = truncated | (lengths >= self._limit)
    truncated = truncated & ~terminated
    bootstrap = (None if self._tracers is None
                 else self._bootstrap_values(truncated, infos, next_obs, params))
    self._obs = next_obs
    self._invalid = invalid_actions(infos, self.num_envs)
    ended = terminated | truncated
    if self.vectorized:
      self._dispatch(temperature, params)  # overlaps the bookkeeping below
    self.env_steps += self.num_envs
    self._returns += rewards
    self._lengths = lengths
    finished = []
    for i in range(self.num_envs):
      if self._tracers is not None:
        tracer = self._tracers[i]
        tracer.add(obs[i], actions[i].item() if actions.ndim == 1 else actions[i],
                   float(rewards[i]), bool(terminated[i]), float(values[i]), pis[i],
                   truncated=bool(truncated[i]),
                   bootstrap_value=None if bootstrap is None else float(bootstrap[i]),
                   mask=None if invalid is None else legal_mask(invalid[i]),
                   **{name: x[i] for name, x in extras.items()})
        while tracer:
          self._trajectories[i].add(tracer.pop())
      if ended[i]:
        trajectory = None
        if self._tracers is not None:
          trajectory = self._trajectories[i]
          trajectory.finalize()
          self._trajectories[i] = Trajectory()
          self._tracers[i].reset()
        finished.append(Episode(float(self._returns[i]), int(self._lengths[i]), trajectory))
        self._returns[i] = 0.
        self._lengths[i] = 0
    return finished

  def _dispatch(self, temperature, params):
    obs = np.array(self._obs, copy=True)
    self._pending = (obs, self._invalid, self.model.act_async(
        self.keys(), obs if self.vectorized else obs[0],
        num_simulations=self.num_simulations, temperature=temperature, params=params,
        invalid_actions=self._invalid, obs_from_batch=self.vectorized))

  def _bootstrap_values(self, truncated, infos, next_obs, params):
    if not truncated.any():
      return None
    final = np.array(next_obs, copy=True)
    for i in np.flatnonzero(truncated):
      final[i] = infos["final_obs"][i]
    _, values = self.model.act(self.keys(), final, with_value=True, obs_from_batch=True,
                               num_simulations=self.num_simulations, temperature=0.,
                               params=params)
    return values

  def close(self) -> None:
    self.envs.close()


# The name `fit` and the benchmarks used for the N-environment actor.
VectorCollector = Actor


class _VectorEnv:
  """A vector environment whose steps are checked (one reward and flag per
  sub-environment, finite rewards, bool flags)."""

  def __init__(self, envs):
    self.envs, self.num_envs = envs, envs.num_envs

  def reset(self, seed=None):
    return self.envs.reset(seed=seed)

  def step(self, actions, lengths):
    next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
    rewards, terminated, truncated = checked_vector_step(
        rewards, terminated, truncated, self.num_envs, lengths)
    return next_obs, rewards, terminated, truncated, infos

  def close(self):
    self.envs.close()


class _OneEnv:
  """One gymnasium environment as a batch of one (no autoreset): what `Actor`
  steps, with its rewards and flags checked as a single environment's."""

  num_envs = 1

  def __init__(self, env):
    self.env = env

  def reset(self, seed=None):
    obs, info = self.env.reset(seed=seed)
    return np.asarray(obs)[None], _batched(info)

  def step(self, actions, lengths):
    a = actions[0].item() if actions.ndim == 1 else actions[0]
    next_obs, r, terminated, truncated, info = self.env.step(a)
    r, terminated, truncated = checked_step(r, terminated, truncated, int(lengths[0]))
    next_obs = np.asarray(next_obs)[None]
    return (next_obs, np.array([r]), np.array([terminated]), np.array([truncated]),
            dict(_batched(info), final_obs=next_obs))

  def close(self):
    self.env.close()


def _batched(info):
  """A single environment's info with its action mask as a batch of one."""
  if isinstance(info, dict) and info.get("action_mask") is not None:
    return {"action_mask": np.asarray(info["action_mask"])[None]}
  return {}


def run_episode(model: Any, env: gym.Env, keys: KeyStream, *, num_simulations: int,
                temperature: float, seed: Optional[int] = None, tracer: Any = None,
                max_episode_steps: Optional[int] = None,
                stop: Optional[Callable[[], bool]] = None) -> Episode:
  """Plays one episode of `env` (an `Actor` of one environment); with a
  tracer, also records it as a Trajectory. See `Actor`."""
  return Actor(model, env, keys, num_simulations=num_simulations, tracer=tracer,
               max_episode_steps=max_episode_steps).run_episode(
                   temperature, seed=seed, stop=stop)


