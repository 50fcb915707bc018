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
  """A pgx environment (`pgx.make(name)`) as the compiled loop steps it.

  With `random_openings=N`, every game starts after 0..N (uniformly many)
  random legal moves, so self-play also sees positions its own openings never
  reach (a move that would end the game is left out); test with an env
  without them.
  """

  def __init__(self, env: Any, random_openings: int = 0):
    if int(random_openings) < 0:
      raise ValueError(f"random_openings must be >= 0, got {random_openings!r}")
    self.env = env
    self.random_openings = int(random_openings)
    self.name = getattr(env, "id", type(env).__name__)
    self.num_actions = int(env.num_actions)
    self.num_players = int(env.num_players)
    self.observation_shape = tuple(env.observation_shape)
    self.default_params = None

  def reset_env(self, key: jax.Array, params: Any = None) -> Tuple[jax.Array, Any]:
    del params
    key, k_count, k_moves = jax.random.split(key, 3)
    state = self.env.init(key)
    if self.random_openings:
      count = jax.random.randint(k_count, (), 0, self.random_openings + 1)

      def opening_move(i, state):
        k_move, k_step = jax.random.split(jax.random.fold_in(k_moves, i))
        action = jax.random.categorical(k_move, jnp.where(state.legal_action_mask, 0., -jnp.inf))
        after = self.env.step(state, action, k_step)
        play = (i < count) & ~after.terminated & ~after.truncated
        return jax.tree_util.tree_map(lambda a, b: jnp.where(play, a, b), after, state)

      state = jax.lax.fori_loop(0, self.random_openings, opening_move, state)
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


def make(name: str, random_openings: int = 0) -> Any:
  """`'pgx:<game>'` (e.g. `pgx:tic_tac_toe`, `pgx:connect_four`) as a `PgxEnv`
  (`random_openings`: see `PgxEnv`).

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
  return PgxEnv(pgx.make(game), random_openings)
