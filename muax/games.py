"""Two-player, alternating, zero-sum games: self-play views and opponents.

muax plays a board game as one gymnasium environment seen by the player to
move (the *self-play view*): `reset` and `step` return the observation from
the view of the player who moves next, `info["action_mask"]` (1 = legal) for
that player and `info["to_play"]` (0 or 1); the reward of `step` is that of
the player who just moved. A `MuZero(..., two_player=True)` trained with a
tracer built with `two_player=True` learns from it with values from the view
of the player to move (the search flips them at every step).

`PettingZooEnv` gives that view of a PettingZoo classic game (tic-tac-toe,
Connect Four, ...); `VersusOpponent` turns a self-play view into a
single-player environment against a fixed opponent policy, which is how
`fit(..., opponent=...)` evaluates.

An opponent is any function `opponent(obs, action_mask) -> action` that sees
the observation from its own view and the legal-action mask (1 = legal).
"""
import importlib
from typing import Any, Callable, Optional, Tuple

import gymnasium as gym
import jax
import numpy as np

from muax import checks

__all__ = ["PettingZooEnv", "RandomOpenings", "RandomOpponent", "VersusOpponent",
           "is_game_id", "make", "model_opponent"]


class PettingZooEnv(gym.Env):
  """The self-play view of a two-player PettingZoo AEC game.

  Args:
    game: a PettingZoo AEC environment (e.g. `tictactoe_v3.env()`), a
      function making one, or the name of a module of `pettingzoo.classic`
      (`'tictactoe_v3'`, `'connect_four_v3'`).

  Observations are the game's `observation` entry as float32 (PettingZoo's
  classic games already give it from the view of the agent to move);
  `info["action_mask"]` and `info["to_play"]` as in the module docstring.
  """

  metadata = {"render_modes": []}

  def __init__(self, game):
    if isinstance(game, str):
      game = _classic_module(game).env
    self.game = game() if callable(game) and not hasattr(game, "agent_selection") else game
    self.game.reset()
    self.players = list(self.game.possible_agents)
    if len(self.players) != 2:
      raise ValueError(f"PettingZooEnv plays two-player games, got agents {self.players}")
    first = self.players[0]
    space = self.game.observation_space(first)
    obs_space = space["observation"] if isinstance(space, gym.spaces.Dict) else space
    if not (isinstance(space, gym.spaces.Dict) and "action_mask" in space.spaces):
      raise ValueError("PettingZooEnv needs observations {'observation', 'action_mask'} "
                       f"as in PettingZoo's classic games, got {space}")
    self.observation_space = gym.spaces.Box(
        np.asarray(obs_space.low, np.float32), np.asarray(obs_space.high, np.float32),
        obs_space.shape, np.float32)
    self.action_space = self.game.action_space(first)
    if not isinstance(self.action_space, gym.spaces.Discrete):
      raise ValueError(f"PettingZooEnv needs a discrete action space, got {self.action_space}")
    self._done = True

  def reset(self, seed: Optional[int] = None,
            options: Optional[dict] = None) -> Tuple[np.ndarray, dict]:
    super().reset(seed=seed)
    if seed is None:  # PettingZoo seeds only when given one: continue our stream
      seed = int(self.np_random.integers(2 ** 31))
    self.game.reset(seed=seed)
    self._done = False
    return self._observe()

  def step(self, action: int) -> Tuple[np.ndarray, float, bool, bool, dict]:
    if self._done:
      raise RuntimeError("the game is over: call reset()")
    mover = self.game.agent_selection
    mask = self._mask()
    if not mask[int(action)]:
      raise ValueError(f"action {action} is illegal for {mover} (legal: "
                       f"{np.flatnonzero(mask).tolist()})")
    self.game.step(int(action))
    reward = float(self.game.rewards[mover])
    terminated = any(self.game.terminations.values())
    truncated = any(self.game.truncations.values()) and not terminated
    self._done = terminated or truncated
    obs, info = self._observe()
    return obs, reward, terminated, truncated, info

  def to_play(self) -> int:
    """0 or 1: the player to move (the first agent moves first)."""
    return self.players.index(self.game.agent_selection)

  def _mask(self):
    return np.asarray(self.game.observe(self.game.agent_selection)["action_mask"], np.int8)

  def _observe(self):
    observation = self.game.observe(self.game.agent_selection)
    obs = np.asarray(observation["observation"], np.float32)
    mask = np.asarray(observation["action_mask"], np.int8)
    if self._done or not mask.any():
      mask = np.ones_like(mask)  # the game is over: no move is played from here
    return obs, {"action_mask": mask, "to_play": self.to_play()}

  def close(self) -> None:
    self.game.close()


class VersusOpponent(gym.Env):
  """A self-play view against a fixed opponent: a one-player environment.

  The opponent's moves happen inside `reset` (when it moves first) and
  `step`; rewards are from the agent's view (its own move's reward minus the
  opponent's). `seat` is 0 (move first), 1 (second) or 'alternate' (0, 1,
  0, ... on successive resets, so an evaluation of an even number of games
  plays both sides equally). `outcomes` lists the agent's final score of each
  finished game (+1 win, 0 draw, -1 loss for win/loss rewards of 1).
  """

  metadata = {"render_modes": []}

  def __init__(self, env: gym.Env, opponent: Callable, seat="alternate"):
    if seat not in (0, 1, "alternate"):
      raise ValueError(f"seat must be 0, 1 or 'alternate', got seat={seat!r}")
    if not callable(opponent):
      raise TypeError(f"opponent must be a function opponent(obs, action_mask) -> action, "
                      f"got {opponent!r}")
    self.env, self.opponent, self.seat = env, opponent, seat
    self.observation_space, self.action_space = env.observation_space, env.action_space
    self.spec = None
    self.outcomes = []
    self._games = 0
    self._score = 0.

  def reset(self, seed: Optional[int] = None,
            options: Optional[dict] = None) -> Tuple[Any, dict]:
    super().reset(seed=seed)
    self._seat = self._games % 2 if self.seat == "alternate" else self.seat
    self._games += 1
    self._score = 0.
    obs, info = self.env.reset(seed=seed)
    if self._seat == 1:
      obs, reward, terminated, truncated, info = self._opponent_moves(obs, info)
      if terminated or truncated:
        raise RuntimeError("the game ended on the opponent's first move")
    return obs, info

  def step(self, action: int) -> Tuple[Any, float, bool, bool, dict]:
    obs, reward, terminated, truncated, info = self.env.step(action)
    if not (terminated or truncated):
      obs, opponent_reward, terminated, truncated, info = self._opponent_moves(obs, info)
      reward -= opponent_reward
    self._score += reward
    if terminated or truncated:
      self.outcomes.append(self._score)
    return obs, reward, terminated, truncated, info

  def _opponent_moves(self, obs, info):
    mask = np.asarray(info.get("action_mask", np.ones(self.action_space.n)), np.int8)
    action = int(self.opponent(obs, mask))
    return self.env.step(action)

  def close(self) -> None:
    self.env.close()


class RandomOpenings(gym.Wrapper):
  """Starts each game of a self-play view after 0..`max_plies` random legal
  moves (uniformly many), so self-play also sees positions its own openings
  never reach. The opening moves are not steps of the episode."""

  def __init__(self, env: gym.Env, max_plies: int = 2, seed: Optional[int] = None):
    super().__init__(env)
    self.max_plies = checks.integer("max_plies", max_plies, low=0, what="an integer >= 0")
    self.rng = np.random.default_rng(seed)

  def reset(self, *, seed: Optional[int] = None,
            options: Optional[dict] = None) -> Tuple[Any, dict]:
    if seed is not None:
      self.rng = np.random.default_rng(seed)
    obs, info = self.env.reset(seed=seed, options=options)
    for _ in range(int(self.rng.integers(self.max_plies + 1))):
      legal = np.flatnonzero(info["action_mask"])
      next_obs, _, terminated, truncated, next_info = self.env.step(int(self.rng.choice(legal)))
      if terminated or truncated:  # keep the position before a game-ending move
        return self.reset(seed=None, options=options)
      obs, info = next_obs, next_info
    return obs, info


class RandomOpponent:
  """Plays a uniformly random legal move (its own seeded generator)."""

  def __init__(self, seed: Optional[int] = None):
    self.rng = np.random.default_rng(seed)

  def __call__(self, obs, action_mask):
    del obs
    return int(self.rng.choice(np.flatnonzero(np.asarray(action_mask))))


def model_opponent(model: Any, num_simulations: int = 25,
                   seed: int = 0) -> Callable[[np.ndarray, np.ndarray], Any]:
  """An opponent that plays `model`'s greedy search (e.g. an earlier checkpoint)."""
  from muax.acting import KeyStream
  keys = KeyStream(jax.random.PRNGKey(seed))

  def opponent(obs, action_mask):
    invalid = 1. - np.asarray(action_mask, np.float32)
    return model.act(keys(), obs, num_simulations=num_simulations, temperature=0.,
                     invalid_actions=invalid)

  return opponent


def make(name: str) -> PettingZooEnv:
  """`PettingZooEnv` of a game named `pettingzoo:<module>` or `<module>` of
  `pettingzoo.classic` (e.g. 'pettingzoo:tictactoe_v3')."""
  return PettingZooEnv(name.split(":", 1)[1] if name.startswith("pettingzoo:") else name)


def is_game_id(env_id: str) -> bool:
  """True for `pettingzoo:<module>` ids (what `muax train` accepts for games)."""
  return isinstance(env_id, str) and env_id.startswith("pettingzoo:")


def _classic_module(name: str):
  try:
    return importlib.import_module(f"pettingzoo.classic.{name}")
  except ImportError as e:
    if "pettingzoo" in str(e) and "classic." not in str(e):
      raise ImportError("PettingZoo games need the pettingzoo package: "
                        "pip install 'muax[games]'") from e
    raise ValueError(f"no PettingZoo classic game {name!r} (e.g. 'tictactoe_v3', "
                     f"'connect_four_v3'): {e}") from e
