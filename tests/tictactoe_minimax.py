"""A perfect tic-tac-toe player (memoised negamax), for evaluating agents.

A board is 9 cells in row-major order: 1 for X, -1 for O, 0 for empty. X
moves first. `best_actions(board)` lists every optimal move for the player to
move; `value(board)` is the game value for that player under perfect play
(1 win, 0 draw, -1 loss).
"""
import functools

import numpy as np

LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8),
         (2, 4, 6))


def winner(board) -> int:
  """1 or -1 when that player has three in a row, else 0."""
  for a, b, c in LINES:
    if board[a] != 0 and board[a] == board[b] == board[c]:
      return int(board[a])
  return 0


def to_move(board) -> int:
  """1 (X) when both have played equally often, else -1 (O)."""
  return 1 if sum(1 for x in board if x != 0) % 2 == 0 else -1


def legal_actions(board):
  return [i for i, x in enumerate(board) if x == 0]


def value(board) -> int:
  """Value for the player to move under perfect play."""
  return _negamax(tuple(int(x) for x in board))


def best_actions(board):
  """Every move that keeps the player to move at `value(board)`."""
  board = tuple(int(x) for x in board)
  player = to_move(board)
  scores = {a: -_negamax(_play(board, a, player)) for a in legal_actions(board)}
  best = max(scores.values())
  return [a for a, s in scores.items() if s == best]


def perfect_policy(rng: np.random.Generator):
  """A player function `board -> action` choosing uniformly among optimal moves."""
  return lambda board: int(rng.choice(best_actions(board)))


def random_policy(rng: np.random.Generator):
  return lambda board: int(rng.choice(legal_actions(board)))


def play(x_policy, o_policy) -> int:
  """Plays one game; returns the winner (1 X, -1 O, 0 draw)."""
  board = [0] * 9
  for turn in range(9):
    player = 1 if turn % 2 == 0 else -1
    action = (x_policy if player == 1 else o_policy)(tuple(board))
    if board[action] != 0:
      raise ValueError(f"illegal move {action} on {board}")
    board[action] = player
    if winner(board):
      return player
  return 0


def _play(board, action, player):
  cells = list(board)
  cells[action] = player
  return tuple(cells)


@functools.lru_cache(maxsize=None)
def _negamax(board) -> int:
  if winner(board):
    return -1  # the previous player just won
  moves = legal_actions(board)
  if not moves:
    return 0
  player = to_move(board)
  return max(-_negamax(_play(board, a, player)) for a in moves)


def board_from_observation(obs) -> tuple:
  """The board of a PettingZoo tictactoe_v3 observation `[3, 3, 2]` (plane 0:
  the pieces of the player to move, plane 1: the other's; cell (r, c) is
  action 3 r + c)."""
  obs = np.asarray(obs)
  own, other = obs[..., 0].reshape(9), obs[..., 1].reshape(9)
  player = 1 if own.sum() == other.sum() else -1  # X moves when the counts are equal
  return tuple(int(x) for x in player * own - player * other)


def perfect_opponent(seed: int = 0):
  """A `muax.games` opponent `(obs, action_mask) -> action` playing perfectly
  (uniformly among optimal moves)."""
  policy = perfect_policy(np.random.default_rng(seed))
  return lambda obs, action_mask: policy(board_from_observation(obs))
