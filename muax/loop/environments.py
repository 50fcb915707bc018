"""The environments and tracer of a `fit` run, made and checked before it starts.

`make_envs` turns `fit`'s `env_id` / `env` / `test_env` into training and test
environments (vector ones with `num_envs > 1`); `tracer_for` gives the n-step
tracer that matches the model (two-player or not).
"""
import functools
from typing import Any, Callable, Optional, Tuple, Union

import gymnasium as gym

from muax import acting
from muax.episode_tracer import PNStep

__all__ = ["make_envs", "tracer_for"]


def tracer_for(model: Any, tracer: Any, opponent: Optional[Callable]) -> Any:
  """The tracer to use (a default one when None), checked against the model."""
  two_player = bool(getattr(model, "two_player", False))
  if opponent is not None and not two_player:
    raise ValueError("opponent is for two-player games: build the model with "
                     "MuZero(..., two_player=True)")
  if opponent is not None and not callable(opponent):
    raise TypeError("opponent must be a function opponent(obs, action_mask) -> action, "
                    f"got {opponent!r}")
  if tracer is None:
    return (PNStep(50, model.discount, 0.5, two_player=True) if two_player
            else PNStep(50, 0.997, 0.5))
  if bool(getattr(tracer, "two_player", False)) != two_player:
    if two_player:
      raise ValueError("the model is two_player=True but the tracer is not: build it with "
                       "two_player=True (e.g. muax.PNStep(n, gamma, two_player=True)) so "
                       "that returns alternate sign between the players")
    raise ValueError("the tracer is two_player=True but the model is not: build the "
                     "model with MuZero(..., two_player=True)")
  return tracer


def make_envs(env_id: Optional[str], env: Any,
              test_env: Optional[Union[gym.Env, gym.vector.VectorEnv]], num_envs: int = 1,
              vectorization: str = "auto", max_episode_steps: Optional[int] = None,
              num_test_envs: int = 1, model: Any = None
              ) -> Tuple[Union[gym.Env, gym.vector.VectorEnv],
                         Union[gym.Env, gym.vector.VectorEnv], str]:
  """Training and test environments; vector ones when `num_envs > 1`.

  `env` may be an environment, a function making one, or a vector
  environment. With `env_id` and `num_envs > 1`, the default test
  environment is a vector one of `num_test_envs` sub-environments.
  """
  if (env_id is None) == (env is None):
    raise ValueError("give exactly one of env_id and env, got "
                     f"env_id={env_id!r} and env={env!r}")
  if env_id is not None:
    env_fn, name = functools.partial(gym.make, env_id), env_id
  else:
    if test_env is None:
      raise ValueError("a custom env needs a separate test_env for evaluation")
    env_fn, name = _custom_env(env, num_envs)
  try:
    if env_fn is not None:
      env = (acting.make_vector_env(env_fn, num_envs, mode=vectorization,
                                    max_episode_steps=max_episode_steps, model=model)
             if num_envs > 1 else env_fn())
    if test_env is None:
      test_env = (acting.make_vector_env(env_fn, num_test_envs, mode="sync",
                                         max_episode_steps=max_episode_steps, model=model)
                  if num_envs > 1 and num_test_envs > 1 else env_fn())
  except gym.error.Error as e:  # its own type, which scripts catch
    raise _with_context(e, f"cannot make environment env_id={env_id!r}") from e
  for what, e in (("env", env), ("test_env", test_env)):
    if isinstance(e, gym.vector.VectorEnv):
      acting.check_vector_env(e, model)
    else:
      acting.check_env(e, what, model)
  return env, test_env, name or acting.env_name(env)


def _with_context(error: Exception, context: str) -> Exception:
  """`error` with a message that starts with `context`, still of its own type
  (scripts catch gymnasium.error.DeprecatedEnv) and a ValueError too (as muax
  raised before)."""
  try:
    return _env_error_type(type(error))(f"{context}: {error}")
  except Exception:  # pylint: disable=broad-except  (an unusual constructor)
    error.add_note(context)
    return error


@functools.lru_cache(maxsize=None)
def _env_error_type(kind: type) -> type:
  if issubclass(kind, ValueError):
    return kind
  return type(kind.__name__, (kind, ValueError), {"__module__": __name__})


def _custom_env(env, num_envs):
  """`(factory or None, run name or None)` for a user's `env` argument."""
  if isinstance(env, gym.vector.VectorEnv):
    if num_envs not in (1, env.num_envs):
      raise ValueError(f"num_envs={num_envs}, but the vector env has {env.num_envs} "
                       "sub-environments")
    return None, None
  if isinstance(env, gym.Env):
    if num_envs > 1:
      raise ValueError(
          f"num_envs={num_envs} needs a function that makes the environment (e.g. "
          "env=lambda: MyEnv()), not an environment instance")
    return None, None
  if callable(env):
    name = getattr(env, "__name__", "")
    return env, (name if name.isidentifier() else None)
  raise TypeError("env must be a gymnasium Env, a function making one, or a vector env; "
                  f"got {type(env).__name__}")
