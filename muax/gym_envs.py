"""Gymnasium environments as muax acts in them: checks of their spaces and
steps, vector environments (`make_vector_env`), action masks from `info`, and
the names and space signatures a run records (re-exported by `muax.acting`).
"""
import functools
import multiprocessing
import os
import signal
import time
from typing import Any, Callable, Optional, Tuple, Union

import gymnasium as gym
import numpy as np

from muax import checks
from muax.variants.muzero import require_discrete

__all__ = [
    "ASYNC_STEP_SECONDS", "DEFAULT_MAX_EPISODE_STEPS", "VECTORIZATION_MODES",
    "action_offset", "check_action_space", "check_env", "check_observation_space",
    "check_vector_env", "checked_step", "checked_vector_step", "env_name",
    "invalid_actions", "legal_mask", "make_vector_env", "space_signature", "step_limit",
]

# Used only when an environment has no time limit of its own: an episode this
# long is treated as truncated, so `fit` and `test` always finish.
DEFAULT_MAX_EPISODE_STEPS = 10_000


def invalid_actions(info: Any, num_envs: Optional[int] = None) -> Optional[np.ndarray]:
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


def check_env(env: gym.Env, what: str = "env", model: Any = None) -> None:
  """Raises ValueError unless `model` can act in the environment: observations
  that are arrays of numbers, and a discrete action space (or what
  `model.check_action_space` accepts: a Box for Sampled MuZero)."""
  check_observation_space(env.observation_space, f"{what}.observation_space")
  check_action_space(env.action_space, f"{what}.action_space", model)


def check_observation_space(space: gym.spaces.Space, what: str) -> None:
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


def check_action_space(space: gym.spaces.Space, what: str, model: Any = None) -> None:
  checker = getattr(model, "check_action_space", None)
  if checker is not None:
    checker(space, what)
  else:
    require_discrete(space, what)


def env_name(env: Union[gym.Env, gym.vector.VectorEnv]) -> str:
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


def space_signature(env: Union[gym.Env, gym.vector.VectorEnv]) -> dict:
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


def action_offset(space: gym.spaces.Space) -> int:
  """What to add to an action index for the environment: `start` of a
  `Discrete(n, start)` space (the model plans over indices 0..n-1)."""
  return int(space.start) if isinstance(space, gym.spaces.Discrete) else 0


def legal_mask(invalid: Optional[np.ndarray]) -> Optional[np.ndarray]:
  """The `mask` stored in replay (1 = legal) from `act`'s invalid actions, or None."""
  return None if invalid is None else invalid == 0.


def step_limit(env: gym.Env, max_episode_steps: Optional[int] = None) -> int:
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
                    max_episode_steps: Optional[int] = None,
                    model: Any = None) -> gym.vector.VectorEnv:
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


def check_vector_env(envs: gym.vector.VectorEnv, model: Any = None) -> None:
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


def checked_step(reward: Any, terminated: Any, truncated: Any,
                 step: int) -> Tuple[float, bool, bool]:
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


def checked_vector_step(rewards: Any, terminated: Any, truncated: Any, num_envs: int,
                        steps: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
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
