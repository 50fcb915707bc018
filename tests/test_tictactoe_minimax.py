"""The perfect tic-tac-toe player used to evaluate agents is indeed perfect."""
import numpy as np
import pytest

import tictactoe_minimax as ttt


def test_empty_board_is_a_draw_and_every_opening_draws():
  assert ttt.value([0] * 9) == 0
  # Every first move draws under perfect play.
  assert sorted(ttt.best_actions([0] * 9)) == list(range(9))


def test_takes_a_win_and_blocks_a_loss():
  # X: 0, 1; O: 3, 4; X to move wins at 2.
  board = [1, 1, 0, -1, -1, 0, 0, 0, 0]
  assert ttt.best_actions(board) == [2] and ttt.value(board) == 1
  # X: 0, 1, 8; O: 4, 7; O to move has no win and must block at 2.
  board = [1, 1, 0, 0, -1, 0, 0, -1, 1]
  assert ttt.best_actions(board) == [2]


def test_perfect_play_draws_itself_and_never_loses_to_random():
  rng = np.random.default_rng(0)
  perfect, random = ttt.perfect_policy(rng), ttt.random_policy(rng)
  assert all(ttt.play(perfect, perfect) == 0 for _ in range(20))
  as_x = [ttt.play(perfect, random) for _ in range(100)]
  as_o = [ttt.play(random, perfect) for _ in range(100)]
  assert -1 not in as_x and 1 not in as_o
  assert as_x.count(1) > 80  # it also wins most games against a random player


def test_random_player_loses_sometimes_so_the_check_can_fail():
  rng = np.random.default_rng(1)
  results = [ttt.play(ttt.random_policy(rng), ttt.perfect_policy(rng)) for _ in range(50)]
  assert results.count(-1) > 0


def test_perfect_opponent_reads_pettingzoo_observations():
  pytest.importorskip("pettingzoo")
  from muax import games
  env = games.PettingZooEnv("tictactoe_v3")
  obs, info = env.reset(seed=0)
  for a in (0, 4, 8):  # X: 0, 8; O: 4 -> O to move must not lose
    obs, _, _, _, info = env.step(a)
  assert ttt.board_from_observation(obs) == (1, 0, 0, 0, -1, 0, 0, 0, 1)
  # X threatens nothing yet; O's optimal replies are the edges, never a corner.
  opponent = ttt.perfect_opponent(0)
  moves = {opponent(obs, info["action_mask"]) for _ in range(30)}
  assert moves and moves <= {1, 3, 5, 7}
  # Against itself through the adapter every game is a draw.
  versus = games.VersusOpponent(games.PettingZooEnv("tictactoe_v3"), ttt.perfect_opponent(1))
  for _ in range(4):
    obs, info = versus.reset()
    done = False
    while not done:
      obs, _, terminated, truncated, info = versus.step(
          ttt.perfect_opponent(2)(obs, info["action_mask"]))
      done = terminated or truncated
  assert versus.outcomes == [0.] * 4
