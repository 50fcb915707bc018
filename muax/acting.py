"""Playing episodes with a model: the acting piece shared by `fit` and `test`.

Acting exchanges only observations, keys and params-bearing models with the
rest of the library, so it can later move into actor processes or vectorised
collectors unchanged in meaning.
"""
import copy
import dataclasses
import functools
import multiprocessing
import os
import signal
import time
from typing import Callable, List, Optional

import gymnasium as gym
import jax
import numpy as np

from muax import checks
from muax.variants.muzero import require_discrete
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

  def state(self):
    """`(key, spare keys [n, *key.shape])` as uint32 arrays: enough to continue."""
    key = self._key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
      key = jax.random.key_data(key)
    key = np.asarray(key, np.uint32)
    spare = (np.stack(self._keys).astype(np.uint32) if self._keys
             else np.zeros((0,) + key.shape, np.uint32))
    return key, spare

  def set_state(self, key, spare):
    """Continues the stream saved by `state` (raw keys of this JAX's PRNG)."""
    key, spare = np.asarray(key, np.uint32), np.asarray(spare, np.uint32)
    expected = tuple(jax.random.key_data(jax.random.key(0)).shape)
    if key.shape != expected or spare.shape[1:] != expected:
      raise ValueError(f"a key stream state is a key {list(expected)} and spare keys "
                       f"[n, {', '.join(map(str, expected))}] for this JAX's PRNG, got "
                       f"shapes {key.shape} and {spare.shape}")
    self._key = jax.numpy.asarray(key)
    self._keys = list(spare)


def invalid_actions(info, num_envs: Optional[int] = None):
  """`act`'s `invalid_actions` (1 = invalid) from `info["action_mask"]` (1 = legal).

  None when the environment gives no mask. For a vector environment's infos
  (`num_envs` given), sub-environments without a mask allow every action.
  """
  if not isinstance(info, dict) or info.get("action_mask") is None:
    return None
  mask = np.asarray(info["action_mask"], np.float32)
  invalid = 1. - mask
  if num_envs is not None and "_action_mask" in info:
    invalid = np.where(np.asarray(info["_action_mask"], bool)[:, None], invalid, 0.)
  return invalid


class Stopped(Exception):
  """Raised inside an episode when the caller asked to stop (Ctrl+C, SIGTERM)."""


@dataclasses.dataclass
class Episode:
  """What one episode produced."""
  episode_return: float
  length: int
  trajectory: Optional[Trajectory] = None


def check_env(env, what: str = "env", model=None):
  """Raises ValueError unless `model` can act in the environment: observations
  that are arrays of numbers, and a discrete action space (or what
  `model.check_action_space` accepts: a Box for Sampled MuZero)."""
  check_observation_space(env.observation_space, f"{what}.observation_space")
  check_action_space(env.action_space, f"{what}.action_space", model)


def check_observation_space(space, what: str):
  """Raises ValueError unless observations from `space` are arrays of numbers
  (a Box, Discrete, MultiDiscrete, MultiBinary, or any space with a numeric
  dtype and a shape)."""
  dtype, shape = getattr(space, "dtype", None), getattr(space, "shape", None)
  if dtype is not None and shape is not None and np.dtype(dtype).kind in "biuf":
    return
  if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
    hint = "flatten it into one array with gymnasium.wrappers.FlattenObservation"
  elif isinstance(space, gym.spaces.Text):
    hint = "encode the text as numbers with an observation wrapper"
  else:
    hint = "wrap the environment to give arrays of numbers"
  raise ValueError(f"muax needs observations that are arrays of numbers (a Box), but "
                   f"{what} is {space}; {hint}")


def check_action_space(space, what: str, model=None):
  checker = getattr(model, "check_action_space", None)
  if checker is not None:
    checker(space, what)
  else:
    require_discrete(space, what)


def env_name(env) -> str:
  """A name for an environment: its registered id, else its class name."""
  if isinstance(env, gym.vector.VectorEnv):
    if isinstance(env, gym.vector.SyncVectorEnv):
      return env_name(env.envs[0])
    spec = env.get_attr("spec")[0]
    if getattr(spec, "id", None):
      return spec.id
    probe = env.env_fns[0]()  # an async env's sub-environments live elsewhere
    try:
      return env_name(probe)
    finally:
      probe.close()
  return getattr(getattr(env, "spec", None), "id", None) or type(env.unwrapped).__name__


def space_signature(env) -> dict:
  """The observation and action spaces of a (vector) environment, as strings a
  run state records so that resuming on other spaces is refused."""
  if isinstance(env, gym.vector.VectorEnv):
    spaces = env.single_observation_space, env.single_action_space
  else:
    spaces = env.observation_space, env.action_space
  return {"observation_space": _describe(spaces[0]), "action_space": _describe(spaces[1])}


def _describe(space) -> str:
  if isinstance(space, gym.spaces.Discrete):
    return f"Discrete({int(space.n)}, start={int(space.start)})"
  return f"{type(space).__name__}(shape={space.shape}, dtype={space.dtype})"


def action_offset(space) -> int:
  """What to add to an action index for the environment: `start` of a
  `Discrete(n, start)` space (the model plans over indices 0..n-1)."""
  return int(space.start) if isinstance(space, gym.spaces.Discrete) else 0


def legal_mask(invalid: Optional[np.ndarray]):
  """The `mask` stored in replay (1 = legal) from `act`'s invalid actions, or None."""
  return None if invalid is None else invalid == 0.


def step_limit(env, max_episode_steps: Optional[int] = None) -> int:
  """The step cap for one episode: given, else the env's spec, else a default."""
  if max_episode_steps is not None:
    return checks.positive_int("max_episode_steps", max_episode_steps)
  spec_limit = getattr(getattr(env, "spec", None), "max_episode_steps", None)
  return int(spec_limit) if spec_limit else DEFAULT_MAX_EPISODE_STEPS


# ---------------------------------------------------------------------------
# Vectorised collection: N environments, one batched search per step.

VECTORIZATION_MODES = ("auto", "sync", "async")
# `auto` runs sub-environments in worker processes only when one step costs
# at least this much (a physics simulator, an emulator); cheap environments
# such as CartPole are faster stepped in this process.
ASYNC_STEP_SECONDS = 1e-3


def make_vector_env(env_fn: Callable, num_envs: int, *, mode: str = "auto",
                    max_episode_steps: Optional[int] = None, model=None):
  """A gymnasium vector environment resetting finished episodes in the same step.

  Args:
    env_fn: makes one environment (called once per sub-environment).
    num_envs: N.
    mode: 'sync' (one process), 'async' (a process per environment) or
      'auto' (async when a probe step takes >= ASYNC_STEP_SECONDS and the
      machine has more than one core).
    model: the model that will act (its `check_action_space` is applied).
    max_episode_steps: wraps each sub-environment in a time limit; by
      default the environment's own limit, or DEFAULT_MAX_EPISODE_STEPS when
      it has none, so every episode ends.
  """
  if mode not in VECTORIZATION_MODES:
    raise ValueError(f"vectorization must be one of {VECTORIZATION_MODES}, got {mode!r}")
  probe = env_fn()
  check_env(probe, "env", model)
  limit = None
  spec_limit = getattr(getattr(probe, "spec", None), "max_episode_steps", None)
  if max_episode_steps is not None or not spec_limit:
    limit = step_limit(probe, max_episode_steps)
  if mode == "auto":
    mode = "async" if (num_envs > 1 and (os.cpu_count() or 1) > 1
                       and _step_seconds(probe) >= ASYNC_STEP_SECONDS) else "sync"
  probe.close()

  def make():
    env = env_fn()
    return gym.wrappers.TimeLimit(env, limit) if limit else env

  autoreset = gym.vector.AutoresetMode.SAME_STEP
  if mode == "async":
    # Spawned, not forked: forking a process that runs JAX's threads can deadlock.
    # Workers ignore Ctrl+C (sent to the whole process group): the main process
    # decides when to stop and closes them.
    worker = functools.partial(_without_interrupts, make)
    return gym.vector.AsyncVectorEnv([worker] * num_envs, autoreset_mode=autoreset,
                                     context="spawn")
  return gym.vector.SyncVectorEnv([make] * num_envs, autoreset_mode=autoreset)


def _without_interrupts(make):
  # gymnasium also calls the factory once in this process (for the spaces):
  # only worker processes ignore Ctrl+C.
  if multiprocessing.parent_process() is not None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
  return make()


def _step_seconds(env, steps: int = 20) -> float:
  env.reset(seed=0)
  env.action_space.seed(0)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
    times.append(time.perf_counter() - start)
    if terminated or truncated:
      env.reset()
  return float(np.median(times))


def check_vector_env(envs, model=None):
  """Raises ValueError unless `envs` suits `VectorCollector`."""
  check_observation_space(envs.single_observation_space,
                          "the vector environment's single_observation_space")
  check_action_space(envs.single_action_space,
                     "the vector environment's single_action_space", model)
  mode = envs.metadata.get("autoreset_mode")
  if mode is not gym.vector.AutoresetMode.SAME_STEP:
    raise ValueError(
        "muax needs a vector environment created with "
        "autoreset_mode=gym.vector.AutoresetMode.SAME_STEP (got "
        f"{mode}); or pass an environment factory and num_envs instead")


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

  def reset(self, seed: Optional[int] = None):
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

  def run_episode(self, temperature: float, *, seed: Optional[int] = None, params=None,
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

  def step(self, temperature: float, params=None) -> List[Episode]:
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

  def close(self):
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
    r, terminated, truncated = _checked_step(r, terminated, truncated, int(lengths[0]))
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


def run_episode(model, env, keys: KeyStream, *, num_simulations: int,
                temperature: float, seed: Optional[int] = None, tracer=None,
                max_episode_steps: Optional[int] = None,
                stop: Optional[Callable[[], bool]] = None) -> Episode:
  """Plays one episode of `env` (an `Actor` of one environment); with a
  tracer, also records it as a Trajectory. See `Actor`."""
  return Actor(model, env, keys, num_simulations=num_simulations, tracer=tracer,
               max_episode_steps=max_episode_steps).run_episode(
                   temperature, seed=seed, stop=stop)


def _checked_step(reward, terminated, truncated, step):
  """`(float reward, bool terminated, bool truncated)` of one `env.step`.

  Raises:
    ValueError: a reward that is not one finite number, or a done flag that
      is not a bool (the string "False" would otherwise end the episode).
  """
  if np.ndim(reward) != 0 or isinstance(reward, (str, bytes)):
    raise ValueError(f"the environment returned a reward that is not a number: "
                     f"{reward!r} (type {type(reward).__name__}) at episode step {step}; "
                     "step must return one float")
  _check_rewards(reward, step)
  return (float(reward), _flag("terminated", terminated, step),
          _flag("truncated", truncated, step))


def _flag(name, value, step) -> bool:
  """A done flag as a bool: bools, and 0/1 as a number or a 0-d array (numpy,
  JAX); strings, None and arrays of flags are refused."""
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if not isinstance(value, (str, bytes)) and value is not None and np.ndim(value) == 0:
    x = np.asarray(value)
    if x.dtype.kind in "biuf" and x in (0, 1):
      return bool(x)
  raise ValueError(f"the environment returned {name}={value!r} (type "
                   f"{type(value).__name__}) at episode step {step}; step must return "
                   f"{name} as a bool")


def checked_vector_step(rewards, terminated, truncated, num_envs: int, steps):
  """`(rewards[N] float, terminated[N] bool, truncated[N] bool)` of a vector step."""
  shapes = {name: np.shape(x) for name, x in (("rewards", rewards),
                                              ("terminations", terminated),
                                              ("truncations", truncated))}
  for name, shape in shapes.items():
    if shape != (num_envs,):
      raise ValueError(f"the vector environment returned {name} of shape {shape}; "
                       f"expected one per sub-environment, ({num_envs},)")
  _check_rewards(rewards, steps)
  flags = []
  for name, x in (("terminations", terminated), ("truncations", truncated)):
    x = np.asarray(x)
    if x.dtype.kind != "b" and not (x.dtype.kind in "iuf" and np.isin(x, (0, 1)).all()):
      raise ValueError(f"the vector environment returned {name} {x!r}; expected bools")
    flags.append(x.astype(bool))
  return np.asarray(rewards, np.float64), flags[0], flags[1]


def _check_rewards(rewards, steps):
  """Raises ValueError for rewards that are not finite numbers."""
  try:
    values = np.asarray(rewards)
  except (TypeError, ValueError):  # ragged sequences
    values = np.asarray(None)
  if values.dtype.kind not in "biuf":
    raise ValueError(f"the environment returned a reward that is not a number: "
                     f"{rewards!r} (type {type(rewards).__name__}) at episode step {steps}")
  if not np.isfinite(values.astype(np.float64)).all():
    raise ValueError(f"the environment returned a non-finite reward {rewards!r} at "
                     f"episode step {steps}; muax cannot learn from it (check the "
                     "environment, or wrap it to clip or replace such rewards)")
