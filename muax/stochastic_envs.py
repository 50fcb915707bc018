"""Small environments with one chance event a round, for Stochastic MuZero
(re-exported by `muax.stochastic`): `GambleEnv` for tests, `CoinBetsEnv`
(where plain MuZero's deterministic model is misled) for the example and the
benchmark."""
from typing import Optional, Tuple

import gymnasium as gym
import numpy as np

from muax import checks

__all__ = ["CoinBetsEnv", "GambleEnv"]


class GambleEnv(gym.Env):
  """Rounds of "take the sure reward, or gamble and react to a coin".

  Each round starts in the *choose* phase. Action 0 takes `safe_reward` and
  ends the round. Action 1 gambles: reward 0, a fair coin `x` is tossed and
  shown, and the next action ends the round with `+win_reward` if it names
  `x`, `-win_reward` otherwise. An episode is `num_rounds` rounds.

  Gambling and reacting is worth `win_reward` a round, the sure reward
  `safe_reward` (less, by default). The step after a gamble is a real chance
  event: Stochastic MuZero should give it two codes with probability 1/2
  each. Both sides of the coin pay the same, so a deterministic model that
  cannot branch on the coin still values the gamble right (in hindsight,
  each name pays `win_reward` when it is said): plain MuZero learns this game
  as well as Stochastic MuZero. This environment tests the machinery;
  `CoinBetsEnv` is one where the chance node matters.

  Observation `[4]` float32: the phase one-hot (choose, coin 0, coin 1) and
  the fraction of rounds left.
  """

  def __init__(self, num_rounds: int = 5, safe_reward: float = 1., win_reward: float = 2.):
    self.num_rounds = checks.positive_int("num_rounds", num_rounds)
    self.safe_reward, self.win_reward = float(safe_reward), float(win_reward)
    self.observation_space = gym.spaces.Box(0., 1., (4,), np.float32)
    self.action_space = gym.spaces.Discrete(2)
    self._round, self._coin = 0, None

  def reset(self, seed: Optional[int] = None,
            options: Optional[dict] = None) -> Tuple[np.ndarray, dict]:
    super().reset(seed=seed)
    self._round, self._coin = 0, None
    return self._obs(), {}

  def step(self, action: int) -> Tuple[np.ndarray, float, bool, bool, dict]:
    if self._coin is None and int(action) == 1:
      self._coin = int(self.np_random.integers(2))
      return self._obs(), 0., False, False, {}
    if self._coin is None:
      reward = self.safe_reward
    else:
      reward = self.win_reward if int(action) == self._coin else -self.win_reward
    self._round, self._coin = self._round + 1, None
    return self._obs(), reward, self._round >= self.num_rounds, False, {}

  def _obs(self):
    obs = np.zeros(4, np.float32)
    obs[0 if self._coin is None else 1 + self._coin] = 1.
    obs[3] = (self.num_rounds - self._round) / self.num_rounds
    return obs


class CoinBetsEnv(gym.Env):
  """Rounds of "pick one of two bets on a fair coin, see the coin, then act".

  Each round starts in the *choose* phase: action `b` picks bet `b` (reward
  0). A fair coin `x` is tossed and shown, and the next action `a` ends the
  round with reward `payoffs[b][x][a]`. An episode is `num_rounds` rounds.

  The default payoffs make a trap for a deterministic model:

    bet 0, "name the coin":  +4 if `a == x`, else -12.  Worth 4 a round.
    bet 1, "long shot":      heads (x = 1): cash out (a = 1) +8, fold 0;
                             tails (x = 0): cash out -10, fold -6.
                             Worth (8 - 6) / 2 = 1 a round.

  Acting at random after the coin, the long shot is the better bet (-2
  against -4 a round); reacting to the coin, naming it is (4 against 1).

  Plain MuZero's model is unrolled along the actions taken and cannot branch
  on the coin, so after "bet 1" it predicts what followed on average *given
  the later actions*. Once the agent reacts to the coin it cashes out only on
  heads, and "bet 1, cash out" has always paid 8: in hindsight the long shot
  is worth 8 against 4 for naming the coin, and its search keeps betting on
  it. (On bet 0 hindsight is harmless: each name pays 4 when it is said, as
  it truly does.) Stochastic MuZero's chance node keeps heads and tails
  apart, each with probability 1/2, and values the long shot at 1.

  With `mid_round_starts = p`, a fraction `p` of the episodes start after a
  random bet, with its coin shown: the agent then learns to react after both
  bets whichever it prefers to make.

  Observation `[6]` float32: the phase one-hot (choose; bet 0 with coin 0 or
  1; bet 1 with coin 0 or 1) and the fraction of rounds left.

  Args:
    num_rounds: rounds in an episode.
    payoffs: `[2, 2, 2]` rewards, indexed `[bet, coin, action]`.
    mid_round_starts: the fraction of episodes that start mid-round.
  """

  PAYOFFS = (((4., -12.), (-12., 4.)), ((-6., -10.), (0., 8.)))

  def __init__(self, num_rounds: int = 4, payoffs=PAYOFFS, *, mid_round_starts: float = 0.):
    self.num_rounds = checks.positive_int("num_rounds", num_rounds)
    if not 0. <= float(mid_round_starts) <= 1.:
      raise ValueError(f"mid_round_starts must be in [0, 1], got {mid_round_starts!r}")
    self.mid_round_starts = float(mid_round_starts)
    self.payoffs = np.asarray(payoffs, np.float64)
    if self.payoffs.shape != (2, 2, 2) or not np.all(np.isfinite(self.payoffs)):
      raise ValueError(f"payoffs must be a finite [2, 2, 2] table, got payoffs={payoffs!r}")
    self.observation_space = gym.spaces.Box(0., 1., (6,), np.float32)
    self.action_space = gym.spaces.Discrete(2)
    self._round, self._bet, self._coin = 0, None, None

  def reset(self, seed: Optional[int] = None,
            options: Optional[dict] = None) -> Tuple[np.ndarray, dict]:
    super().reset(seed=seed)
    self._round, self._bet, self._coin = 0, None, None
    if self.np_random.random() < self.mid_round_starts:
      self._bet, self._coin = (int(x) for x in self.np_random.integers(2, size=2))
    return self._obs(), {}

  def step(self, action: int) -> Tuple[np.ndarray, float, bool, bool, dict]:
    if self._bet is None:
      self._bet, self._coin = int(action), int(self.np_random.integers(2))
      return self._obs(), 0., False, False, {}
    reward = float(self.payoffs[self._bet, self._coin, int(action)])
    self._round, self._bet, self._coin = self._round + 1, None, None
    return self._obs(), reward, self._round >= self.num_rounds, False, {}

  def _obs(self):
    obs = np.zeros(6, np.float32)
    obs[0 if self._bet is None else 1 + 2 * self._bet + self._coin] = 1.
    obs[5] = (self.num_rounds - self._round) / self.num_rounds
    return obs
