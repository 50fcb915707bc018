"""pgx tic-tac-toe in the compiled loop: per-seat results against random and perfect players.

For each seed, trains with `muax train pgx:tic_tac_toe`'s settings
(`cli_compiled.compiled_setup`) and, after every chunk, plays 200 greedy games
against a uniformly random legal opponent, the agent moving first in half of
them; prints one JSON line per chunk (wins and losses as first and as second
mover). Then the final parameters play `--perfect-games` greedy games from each
seat against the perfect player of `tests/tictactoe_minimax.py` (uniformly
among optimal moves; it never loses, so a draw is the best result), and a
summary line per seed and one for all seeds follow. `--openings 0` trains
without the random openings the CLI uses; `--set KEY=VALUE` overrides any
other option of `muax train` (e.g. `replay=prioritized`).

Usage: python benchmarks/compiled_tictactoe.py [--openings 3] [--max-training-steps 16000]
    [--seeds 0 1 2] [--perfect-games 100] [--perfect-simulations 25 100] [--set KEY=VALUE ...]
    [--platform cpu|gpu]
"""
import argparse
import json
import os
import sys
import time

import jax
import numpy as np

from muax import cli
from muax import cli_compiled
from muax.loop.jitted import CompiledLoop

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import tictactoe_minimax  # noqa: E402 (tests/ holds the perfect player)
from compiled_cartpole import override  # noqa: E402


def versus_perfect(model, env, first: bool, games: int, seed: int, num_simulations: int):
  """`[wins, draws, losses]` of `model`'s greedy search in `games` pgx games
  against the perfect player, moving first (`first`) or second."""
  init, step = jax.jit(env.env.init), jax.jit(env.env.step)
  perfect = tictactoe_minimax.perfect_policy(np.random.default_rng(seed))
  key, counts = jax.random.PRNGKey(seed), [0, 0, 0]
  for _ in range(games):
    key, k_init = jax.random.split(key)
    state = init(k_init)
    agent = int(state.current_player) if first else 1 - int(state.current_player)
    while not bool(state.terminated | state.truncated):
      obs = np.asarray(state.observation, np.float32)
      if int(state.current_player) == agent:
        key, k_act = jax.random.split(key)
        invalid = 1. - np.asarray(state.legal_action_mask, np.float32)
        action = int(model.act(k_act, obs, num_simulations=num_simulations, temperature=0.,
                               invalid_actions=invalid))
      else:  # the observation is the perfect player's view: its pieces in plane 0
        action = perfect(tictactoe_minimax.board_from_observation(obs))
      state = step(state, action)
    outcome = float(state.rewards[agent])
    counts[0 if outcome > 0 else 1 if outcome == 0 else 2] += 1
  return counts


def train_and_test(config, perfect_games, perfect_simulations=None):
  setup = cli_compiled.compiled_setup(config)
  model = setup["model"]
  loop = CompiledLoop(model, setup["env"], config=setup["loop_config"],
                      test_env=setup["test_env"])
  state = loop.init(jax.random.PRNGKey(config.seed))
  rows, start = [], time.perf_counter()
  while int(state.env_steps) < setup["max_env_steps"]:
    state, _ = loop.run(state, setup["chunk"])
    scores = np.asarray(loop.evaluate(state.train.params,
                                      jax.random.PRNGKey(int(state.env_steps)), 200, 9))
    first, second = scores[0::2], scores[1::2]
    rows.append({"bench": "compiled_tictactoe", "openings": cli_compiled.OPENINGS[config.env_id],
                 "seed": config.seed, "moves": int(state.env_steps),
                 "updates": int(state.train.count),
                 "first_win": float((first > 0).mean()), "first_loss": float((first < 0).mean()),
                 "second_win": float((second > 0).mean()),
                 "second_loss": float((second < 0).mean()),
                 "seconds": round(time.perf_counter() - start, 1)})
    print(json.dumps(rows[-1]), flush=True)
  model.restore_train_state(jax.device_get(state.train))
  last = rows[-5:]
  summary = {"bench": "compiled_tictactoe_summary", "openings": rows[0]["openings"],
             "seed": config.seed, "moves": rows[-1]["moves"], "seconds": rows[-1]["seconds"],
             "last5_first_loss_max": max(r["first_loss"] for r in last),
             "last5_second_loss_max": max(r["second_loss"] for r in last),
             "last5_second_loss_min": min(r["second_loss"] for r in last)}
  for simulations in perfect_simulations or [config.num_simulations]:
    suffix = "" if simulations == config.num_simulations else f"_{simulations}sims"
    for first, seat in ((True, "first"), (False, "second")):
      summary[f"vs_perfect_{seat}{suffix}"] = versus_perfect(
          model, setup["test_env"], first, perfect_games, config.seed + 100, simulations)
  print(json.dumps(summary), flush=True)
  return summary


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--openings", type=int, default=None,
                      help="random opening moves (default: the CLI's)")
  parser.add_argument("--max-training-steps", type=int, default=16000)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--perfect-games", type=int, default=100,
                      help="games per seat against the perfect player")
  parser.add_argument("--perfect-simulations", type=int, nargs="+", default=None,
                      help="search simulations in those games (default: training's)")
  parser.add_argument("--set", type=override, nargs="*", default=[], metavar="KEY=VALUE",
                      help="muax train options to override, e.g. replay=prioritized")
  parser.add_argument("--platform", default=None)
  args = parser.parse_args()
  if args.platform:
    jax.config.update("jax_platform_name", args.platform)
  if args.openings is not None:
    cli_compiled.OPENINGS = {**cli_compiled.OPENINGS, "pgx:tic_tac_toe": args.openings}
  results = []
  for seed in args.seeds:
    values = dict(env_id="pgx:tic_tac_toe", seed=seed,
                  max_training_steps=args.max_training_steps, **dict(args.set))
    config = cli.config_from_args(values, set(values))
    results.append(train_and_test(config, args.perfect_games, args.perfect_simulations))
  for simulations in args.perfect_simulations or [None]:  # a line per search budget
    suffix = "" if simulations in (None, config.num_simulations) else f"_{simulations}sims"
    losses = [r[f"vs_perfect_first{suffix}"][2] + r[f"vs_perfect_second{suffix}"][2]
              for r in results]
    print(json.dumps({"bench": "compiled_tictactoe_perfect", "seeds": args.seeds,
                      "overrides": dict(args.set),
                      "simulations": simulations or config.num_simulations,
                      "games_per_seat": args.perfect_games, "losses_per_seed": losses,
                      "seeds_never_lost": sum(n == 0 for n in losses)}), flush=True)


if __name__ == "__main__":
  main()
