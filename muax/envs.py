"""Pixel environments: Atari (ale-py and gymnasium's preprocessing) and MinAtar.

Both give uint8 NHWC observations, which `nn.resnet_networks` scales to
[0, 1] and `TrajectoryReplayBuffer(..., obs_dtype=np.uint8)` stores compactly.
The packages are optional: `pip install "muax[atari]"` (ale-py, whose wheels
ship the ROMs, and OpenCV for the resizing) and `pip install "muax[minatar]"`.

`make(env_id)` also understands the ids `atari:<Game>` (e.g. `atari:Pong`) and
`minatar:<game>` (e.g. `minatar:breakout`) that `muax train` accepts.
"""
from typing import Any, Optional, Tuple

import gymnasium as gym
import numpy as np

from muax import checks
from muax.wrappers import PixelStack

__all__ = ["MINATAR_GAMES", "MinAtarEnv", "is_pixel_env_id", "make", "make_atari",
           "make_minatar"]

MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
# ALE v5's default (Machado et al., 2018); the Atari 100k papers turn it off.
_STICKY_PROBABILITY = 0.25
_PREFIXES = ("atari:", "minatar:")


def make_atari(game: str, *, sticky_actions: bool = False, frame_skip: int = 4,
               screen_size: int = 96, grayscale: bool = True, frame_stack: int = 4,
               action_planes: bool = True, max_episode_steps: Optional[int] = 27_000,
               full_action_space: bool = False, noop_max: int = 30,
               terminal_on_life_loss: bool = False,
               render_mode: Optional[str] = None) -> gym.Env:
  """An Atari game with the usual preprocessing, as uint8 NHWC frame stacks.

  The ALE v5 environment runs with `frameskip=1` so that gymnasium's
  `AtariPreprocessing` does the skipping (max-pooling the last two frames),
  the no-op starts and the resizing; `PixelStack` then stacks the frames and
  the actions that led to them along the channel axis.

  Args:
    game: a game name (`'Pong'`, `'MsPacman'`, `'ms_pacman'`) or a full
      gymnasium id such as `'ALE/Pong-v5'`.
    sticky_actions: repeat the previous action with probability 0.25 (ALE
      v5's default); off by default, as in the Atari 100k papers.
    frame_skip: emulator frames per agent step.
    screen_size: frames are resized to `screen_size x screen_size`.
    grayscale: one channel per frame instead of three (RGB).
    frame_stack: frames (and action planes) per observation.
    action_planes: append one plane per stacked frame holding the action that
      led to it (see `PixelStack`).
    max_episode_steps: truncate episodes after this many agent steps (27,000
      = 108,000 frames at frame skip 4, ALE's own limit); None: ALE's limit.
    full_action_space: all 18 actions instead of the game's minimal set.
    noop_max: at most this many no-op steps after each reset (0: none).
    terminal_on_life_loss: end the episode when a life is lost.
    render_mode: passed to the ALE environment.

  Returns:
    a gymnasium environment with observations `[screen_size, screen_size,
    frame_stack * (1 or 3) + frame_stack]` (uint8; without action planes the
    last term is 0) and `Discrete` actions.

  Raises:
    ImportError: ale-py or OpenCV is missing (`pip install "muax[atari]"`).
    ValueError: an unknown game, a count that is not a positive integer.
  """
  for name, value in (("frame_skip", frame_skip), ("screen_size", screen_size),
                      ("frame_stack", frame_stack)):
    checks.positive_int(name, value)
  checks.positive_int("noop_max", noop_max, allow_zero=True)
  if max_episode_steps is not None:
    checks.positive_int("max_episode_steps", max_episode_steps)
  env_id = _atari_id(game)
  _register_ale()
  try:
    env = gym.make(env_id, frameskip=1, full_action_space=bool(full_action_space),
                   repeat_action_probability=_STICKY_PROBABILITY if sticky_actions else 0.,
                   render_mode=render_mode)
  except gym.error.Error as e:
    raise ValueError(f"unknown Atari game {game!r} (gymnasium id {env_id!r}): {e}. Use "
                     "the ALE name, e.g. 'Pong', 'MsPacman' or 'ALE/Pong-v5'") from e
  try:
    env = gym.wrappers.AtariPreprocessing(
        env, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size,
        terminal_on_life_loss=terminal_on_life_loss, grayscale_obs=grayscale,
        grayscale_newaxis=False, scale_obs=False)
  except gym.error.DependencyNotInstalled as e:
    env.close()
    raise ImportError('make_atari resizes frames with OpenCV, which is not installed: '
                      'pip install "muax[atari]"') from e
  if max_episode_steps is not None:
    env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
  return PixelStack(env, frame_stack, action_planes=action_planes)


class MinAtarEnv(gym.Env):
  """A MinAtar game (Young & Tian, 2019) as a gymnasium environment.

  Wraps `minatar.Environment` directly. Observations are the game's 10x10
  binary planes as uint8 `[10, 10, C]` with values 0 and 255 (so the ResNet's
  division by 255 gives 0 and 1); actions are `Discrete(6)` (all of MinAtar's
  actions, as in the paper's experiments) or the game's minimal set.
  `reset(seed=s)` seeds the game and its sticky actions, so a seed fixes the
  episode given the actions.

  Args:
    game: one of `MINATAR_GAMES`.
    sticky_action_prob: probability of repeating the previous action
      (MinAtar's default 0.1, used in the paper).
    difficulty_ramping: MinAtar's difficulty ramping (its default).
    minimal_action_set: only the actions that matter in this game.
  """

  metadata = {"render_modes": []}

  def __init__(self, game: str = "breakout", *, sticky_action_prob: float = 0.1,
               difficulty_ramping: bool = True, minimal_action_set: bool = False):
    minatar = _import_minatar()
    if game not in MINATAR_GAMES:
      raise ValueError(f"unknown MinAtar game {game!r}: choose one of {MINATAR_GAMES}")
    checks.number("sticky_action_prob", sticky_action_prob, low=0., high=1.,
                  what="a probability in [0, 1]", not_a_number=ValueError)
    self.game = game
    self._game = minatar.Environment(game, sticky_action_prob=float(sticky_action_prob),
                                     difficulty_ramping=bool(difficulty_ramping))
    self._actions = (list(self._game.minimal_action_set()) if minimal_action_set
                     else list(range(self._game.num_actions())))
    self.action_space = gym.spaces.Discrete(len(self._actions))
    self.observation_space = gym.spaces.Box(0, 255, tuple(self._game.state_shape()),
                                            np.uint8)
    self._seeded = False

  def reset(self, *, seed: Optional[int] = None,
            options: Optional[dict] = None) -> Tuple[np.ndarray, dict]:
    super().reset(seed=seed)
    if seed is not None or not self._seeded:
      # One stream from gymnasium's seeding drives the game and sticky actions.
      self._game.seed(int(self.np_random.integers(2 ** 31)))
      self._seeded = True
    self._game.reset()
    self._game.last_action = 0  # no sticky action carried over from the last episode
    return self._observe(), {}

  def step(self, action: int) -> Tuple[np.ndarray, float, bool, bool, dict]:
    if not self.action_space.contains(action):
      raise ValueError(f"action {action!r} is not in {self.action_space}")
    reward, done = self._game.act(self._actions[int(action)])
    return self._observe(), float(reward), bool(done), False, {}

  def _observe(self):
    return np.asarray(self._game.state(), np.uint8) * np.uint8(255)


def make_minatar(game: str = "breakout", *, max_episode_steps: Optional[int] = None,
                 **kwargs: Any) -> gym.Env:
  """A MinAtar game as a gymnasium environment (see `MinAtarEnv` for `kwargs`).

  Args:
    game: one of `MINATAR_GAMES` (`'breakout'`, ...).
    max_episode_steps: truncate episodes after this many steps (None: never).
    **kwargs: `sticky_action_prob`, `difficulty_ramping`, `minimal_action_set`.

  Returns:
    an environment with uint8 observations `[10, 10, C]` and `Discrete` actions.

  Raises:
    ImportError: minatar is missing (`pip install "muax[minatar]"`).
    ValueError: an unknown game or setting.
  """
  env = MinAtarEnv(game, **kwargs)
  if max_episode_steps is not None:
    checks.positive_int("max_episode_steps", max_episode_steps)
    env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
  return env


def is_pixel_env_id(env_id: str) -> bool:
  """Whether `env_id` is an `atari:<Game>` or `minatar:<game>` id for `make`."""
  return isinstance(env_id, str) and env_id.startswith(_PREFIXES)


def make(env_id: str) -> gym.Env:
  """`atari:<Game>` (`make_atari` defaults) or `minatar:<game>` (`make_minatar`)."""
  if not is_pixel_env_id(env_id):
    raise ValueError(f"expected an id atari:<Game> or minatar:<game>, got {env_id!r}")
  kind, _, game = env_id.partition(":")
  return make_atari(game) if kind == "atari" else make_minatar(game)


def _atari_id(game: str) -> str:
  if not isinstance(game, str) or not game:
    raise ValueError(f"game must be an Atari game name such as 'Pong', got {game!r}")
  if "/" in game or "-v" in game:
    return game
  if "_" in game or game.islower():
    game = "".join(part.capitalize() for part in game.split("_"))
  return f"ALE/{game}-v5"


def _register_ale():
  try:
    import ale_py
  except ImportError as e:
    raise ImportError('make_atari needs ale-py (the Atari emulator; its wheels ship the '
                      'ROMs): pip install "muax[atari]"') from e
  gym.register_envs(ale_py)


def _import_minatar():
  try:
    import minatar
  except ImportError as e:
    raise ImportError('MinAtar games need the minatar package: pip install '
                      '"muax[minatar]"') from e
  if not hasattr(minatar, "Environment"):
    raise ImportError(f"`import minatar` found {getattr(minatar, '__file__', minatar)!r}, "
                      "not the MinAtar package: a file or folder named minatar on the path "
                      "shadows it (rename it, or run it from another directory)")
  return minatar
