"""JAX environments for the compiled loop (`muax.loop.jitted`), by name.

`make("pgx:tic_tac_toe")` wraps a pgx game (the `jax-envs` extra installs
pgx) in the interface the compiled loop steps: gymnax's `reset_env` /
`step_env`, plus `legal_actions` and `current_player`. Rewards are from the
view of the player who moved and observations from the view of the player to
move, as `MuZero(..., two_player=True)` and the two-player tracers take them.
"""
from typing import Any, Tuple

import jax
import jax.numpy as jnp

__all__ = ["PgxEnv", "make"]


class PgxEnv:
  """A pgx environment (`pgx.make(name)`) as the compiled loop steps it."""

  def __init__(self, env: Any):
    self.env = env
    self.name = getattr(env, "id", type(env).__name__)
    self.num_actions = int(env.num_actions)
    self.num_players = int(env.num_players)
    self.observation_shape = tuple(env.observation_shape)
    self.default_params = None

  def reset_env(self, key: jax.Array, params: Any = None) -> Tuple[jax.Array, Any]:
    del params
    state = self.env.init(key)
    return self._obs(state), state

  def step_env(self, key: jax.Array, state: Any, action: jax.Array,
               params: Any = None) -> Tuple[jax.Array, Any, jax.Array, jax.Array, dict]:
    del params
    mover = state.current_player
    state = self.env.step(state, action, key)
    reward = state.rewards[mover].astype(jnp.float32)
    return self._obs(state), state, reward, state.terminated | state.truncated, {}

  @staticmethod
  def legal_actions(state: Any) -> jax.Array:
    return state.legal_action_mask

  @staticmethod
  def current_player(state: Any) -> jax.Array:
    return state.current_player

  @staticmethod
  def time_limit(state: Any, params: Any = None) -> jax.Array:
    del params
    return state.truncated & ~state.terminated

  @staticmethod
  def _obs(state: Any) -> jax.Array:
    return state.observation.astype(jnp.float32)


def make(name: str) -> Any:
  """`'pgx:<game>'` (e.g. `pgx:tic_tac_toe`, `pgx:connect_four`) as a `PgxEnv`.

  Raises:
    ValueError: a name without the `pgx:` prefix, or a game pgx does not know.
    ImportError: pgx is not installed (`pip install "muax[jax-envs]"`).
  """
  kind, _, game = str(name).partition(":")
  if kind != "pgx" or not game:
    raise ValueError(f"unknown JAX environment {name!r}: use 'pgx:<game>', e.g. "
                     "'pgx:tic_tac_toe'")
  try:
    import pgx  # noqa: PLC0415 (an optional dependency)
  except ImportError as e:
    raise ImportError(f"{name} needs pgx: pip install 'muax[jax-envs]'") from e
  if game not in pgx.available_envs():
    raise ValueError(f"pgx has no game {game!r}; it has {sorted(pgx.available_envs())}")
  return PgxEnv(pgx.make(game))
