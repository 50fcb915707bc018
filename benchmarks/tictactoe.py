"""Tic-tac-toe self-play against a perfect player (issue 5's goal: never lose).

Trains `examples/tictactoe.py`'s two-player MuZero by self-play through
`muax.train.run`, then plays greedy games against the perfect minimax player
of `tests/tictactoe_minimax.py` (choosing uniformly among optimal moves) and
against a random player, as X and as O. Prints JSON lines: the test curve
(against random, both seats), one result line per seed, and a summary.

  python benchmarks/tictactoe.py                       # 3000 episodes, seed 0
  python benchmarks/tictactoe.py --seeds 0 1 2 --games 100
"""
import argparse
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(_ROOT, "examples"), os.path.join(_ROOT, "tests")]

import muax  # noqa: E402
from muax import games  # noqa: E402
import tictactoe  # noqa: E402
import tictactoe_minimax  # noqa: E402


def record(model, opponent, seat: int, num_games: int, num_simulations: int, seed: int):
  """`[wins, draws, losses]` of `num_games` greedy games from `seat` (0 = X)."""
  env = games.VersusOpponent(games.PettingZooEnv("tictactoe_v3"), opponent, seat=seat)
  muax.test.test(model, env, jax.random.PRNGKey(seed), num_simulations,
                 num_test_episodes=num_games, random_seed=seed)
  outcomes = np.sign(env.outcomes)
  return [int((outcomes > 0).sum()), int((outcomes == 0).sum()), int((outcomes < 0).sum())]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--episodes", type=int, default=15000)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0])
  parser.add_argument("--games", type=int, default=100, help="games per seat and opponent")
  parser.add_argument("--num-simulations", type=int, default=25)
  args = parser.parse_args()
  results = []
  for seed in args.seeds:
    start = time.time()
    with tempfile.TemporaryDirectory() as folder:
      model, result = tictactoe.train(args.episodes, seed, num_simulations=args.num_simulations,
                                      save_dir=os.path.join(folder, "m"),
                                      logdir=os.path.join(folder, "tb"), progress=False)
    for test in result.tests:
      print(json.dumps({"seed": seed, "episode": test.episode, "env_steps": test.env_steps,
                        "seconds": round(test.seconds, 1),
                        "test_score_vs_random": test.test_return}), flush=True)
    line = {"seed": seed, "episodes": result.episodes, "env_steps": result.env_steps,
            "train_seconds": round(result.seconds, 1),
            "best_test_score_vs_random": result.best_test_return}
    for name, opponent in (("perfect", tictactoe_minimax.perfect_opponent(seed + 100)),
                           ("random", games.RandomOpponent(seed + 200))):
      for seat, side in ((0, "X"), (1, "O")):
        line[f"vs_{name}_as_{side}"] = record(model, opponent, seat, args.games,
                                              args.num_simulations, seed)
    line["wall_seconds"] = round(time.time() - start, 1)
    print(json.dumps(line), flush=True)
    results.append(line)
  losses = sum(r[f"vs_perfect_as_{s}"][2] for r in results for s in "XO")
  print(json.dumps({"summary": "tictactoe", "seeds": args.seeds, "episodes": args.episodes,
                    "games_vs_perfect": 2 * args.games * len(results),
                    "losses_vs_perfect": losses,
                    "never_lost": losses == 0}), flush=True)


if __name__ == "__main__":
  main()
