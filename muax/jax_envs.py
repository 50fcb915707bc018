"""JAX environments for the compiled loop (`muax.loop.jitted`), by name.

`make("gymnax:CartPole-v1")` wraps a gymnax environment (`GymnaxEnv`: float32
observations, its own parameters, its episode clock as the time limit), and
`make("pgx:tic_tac_toe")` a pgx game (`PgxEnv`) in the interface the compiled
loop steps: gymnax's `reset_env` / `step_env`, plus `legal_actions` and
`current_player`. Pgx rewards are from the view of the player who moved and
observations from the view of the player to move, as `MuZero(...,
two_player=True)` and the two-player tracers take them. The `jax-envs` extra
installs both libraries.
"""
import importlib
from typing import Any, Callable, NamedTuple, Optional, Tuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["GymnaxEnv", "GymnaxState", "PgxEnv", "board_symmetries", "is_jax_env_id", "make"]

PREFIXES = ("gymnax:", "pgx:")


def time_limit_of(state: Any, params: Any) -> jax.Array:
  """gymnax's clock: `state.time >= params.max_steps_in_episode` (False for
  environments without one)."""
  if not hasattr(state, "time") or not hasattr(params, "max_steps_in_episode"):
    return jnp.zeros(jnp.shape(getattr(state, "time", False)), bool)
  return state.time >= params.max_steps_in_episode


def is_jax_env_id(env_id: str) -> bool:
  """Whether `env_id` names a JAX environment (`gymnax:<id>` or `pgx:<game>`)."""
  return str(env_id).startswith(PREFIXES)


class GymnaxState(NamedTuple):
  """A gymnax environment's state and whether its last step terminated."""
  env_state: Any
  terminated: jax.Array  # [] bool


class GymnaxEnv:
  """A gymnax environment with its parameters, as the compiled loop steps it.

  gymnax (>= 1.0) splits an episode's end: `step_env`'s `done` is a natural
  termination, and `is_truncated(state, params)` (`state.time >=
  params.max_steps_in_episode`) the time limit its `step` adds. Here `done`
  is either, and `time_limit` is True where the clock alone ended the episode
  (bootstrapped, as gymnasium's `truncated` is in the host loop).
  Observations come as float32 (MinAtar's planes too) and rewards as float32.
  `action_space` is the gymnasium equivalent of gymnax's: `Discrete(n)`
  (`num_actions` = n), or a float32 `Box` (`num_actions` None: Pendulum-v1,
  for `policy='sampled'`). `CompiledLoop` wraps a bare gymnax environment in
  this itself.
  """

  num_players = 1

  def __init__(self, env: Any, params: Any = None, name: Optional[str] = None):
    self.env = env
    self.default_params = env.default_params if params is None else params
    self.name = name or getattr(env, "name", type(env).__name__)
    space = env.action_space(self.default_params)
    if hasattr(space, "n"):
      self.num_actions = int(space.n)
      self.action_space = gym.spaces.Discrete(self.num_actions)
    elif hasattr(space, "low") and hasattr(space, "high"):
      shape = tuple(space.shape)
      self.num_actions = None
      self.action_space = gym.spaces.Box(np.broadcast_to(np.float32(space.low), shape),
                                         np.broadcast_to(np.float32(space.high), shape),
                                         shape, np.float32)
    else:
      raise ValueError(f"{self.name} has a {type(space).__name__} action space; the "
                       "compiled loop acts in discrete or box action spaces")
    self.observation_shape = tuple(env.observation_space(self.default_params).shape)
    self.max_steps = getattr(self.default_params, "max_steps_in_episode", None)

  def reset_env(self, key: jax.Array, params: Any = None) -> Tuple[jax.Array, GymnaxState]:
    obs, state = self.env.reset_env(key, self._params(params))
    return obs.astype(jnp.float32), GymnaxState(state, jnp.zeros((), bool))

  def step_env(self, key: jax.Array, state: GymnaxState, action: jax.Array, params: Any = None
               ) -> Tuple[jax.Array, GymnaxState, jax.Array, jax.Array, dict]:
    params = self._params(params)
    obs, inner, reward, terminated, info = self.env.step_env(key, state.env_state, action,
                                                             params)
    terminated = jnp.asarray(terminated, bool)
    done = terminated | self._truncated(inner, params)
    return (obs.astype(jnp.float32), GymnaxState(inner, terminated),
            jnp.asarray(reward, jnp.float32), done, info)

  def time_limit(self, state: GymnaxState, params: Any = None) -> jax.Array:
    return self._truncated(state.env_state, self._params(params)) & ~state.terminated

  def _params(self, params: Any) -> Any:
    return self.default_params if params is None else params

  def _truncated(self, inner: Any, params: Any) -> jax.Array:
    if hasattr(self.env, "is_truncated"):
      return jnp.asarray(self.env.is_truncated(inner, params), bool)
    return jnp.asarray(time_limit_of(inner, params), bool)


def board_symmetries(rows: int, cols: int, dihedral: bool
                     ) -> Tuple[Tuple[Callable[[jax.Array], jax.Array], np.ndarray], ...]:
  """The symmetries of a `[rows, cols, C]` board as `(transform, permutation)`
  pairs, the identity first: `transform` maps an observation, and action `a`
  becomes `permutation[a]`. `dihedral` (square boards whose actions are the
  cells, row-major: tic-tac-toe) gives the 8 rotations and reflections;
  otherwise the left-right mirror of boards whose actions are the columns
  (Connect Four)."""
  def transform(k, flip):
    return lambda obs: jnp.rot90(obs[:, ::-1] if flip else obs, k, axes=(0, 1))

  if not dihedral:
    return ((lambda obs: obs, np.arange(cols)),
            (lambda obs: obs[:, ::-1], np.arange(cols)[::-1].copy()))
  cells = np.arange(rows * cols).reshape(rows, cols)
  pairs = []
  for flip in (False, True):
    for k in range(4):
      moved = np.rot90(cells[:, ::-1] if flip else cells, k).reshape(-1)
      permutation = np.empty(rows * cols, np.int32)
      permutation[moved] = np.arange(rows * cols)  # cell moved[j] lands on j
      pairs.append((transform(k, flip), permutation))
  return tuple(pairs)


# The games whose boards are symmetric (`PgxEnv.symmetries`).
_SYMMETRIES = {"tic_tac_toe": (3, 3, True), "connect_four": (6, 7, False)}


class PgxEnv:
  """A pgx environment (`pgx.make(name)`) as the compiled loop steps it.

  With `random_openings=N`, every game starts after 0..N (uniformly many)
  random legal moves, so self-play also sees positions its own openings never
  reach (a move that would end the game is left out); test with an env
  without them. Tic-tac-toe and Connect Four have `symmetries`
  (`board_symmetries`): the compiled loop trains on a random one of each
  sampled window.
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
    if self.name in _SYMMETRIES:
      self.symmetries = board_symmetries(*_SYMMETRIES[self.name])

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
  """`'gymnax:<id>'` (e.g. `gymnax:CartPole-v1`, `gymnax:Breakout-MinAtar`) as a
  `GymnaxEnv`, or `'pgx:<game>'` (e.g. `pgx:tic_tac_toe`, `pgx:connect_four`)
  as a `PgxEnv` (`random_openings`: see `PgxEnv`; pgx games only).

  Raises:
    ValueError: a name without either prefix, or an environment the library
      does not know.
    ImportError: the library is not installed (`pip install "muax[jax-envs]"`).
  """
  kind, _, game = str(name).partition(":")
  if kind not in ("gymnax", "pgx") or not game:
    raise ValueError(f"unknown JAX environment {name!r}: use 'gymnax:<id>' or 'pgx:<game>', "
                     "e.g. 'gymnax:CartPole-v1' or 'pgx:tic_tac_toe'")
  try:
    library = importlib.import_module(kind)  # an optional dependency
  except ImportError as e:
    raise ImportError(f"{name} needs {kind}: pip install 'muax[jax-envs]'") from e
  if kind == "gymnax":
    if random_openings:
      raise ValueError("random_openings is for pgx games")
    if game not in library.registered_envs:
      raise ValueError(f"gymnax has no environment {game!r}; it has "
                       f"{sorted(library.registered_envs)}")
    env, params = library.make(game)
    return GymnaxEnv(env, params, name=game)
  if game not in library.available_envs():
    raise ValueError(f"pgx has no game {game!r}; it has {sorted(library.available_envs())}")
  return PgxEnv(library.make(game), random_openings)
