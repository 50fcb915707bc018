"""pgx tic-tac-toe in the compiled loop: per-seat results against a random player.

Trains with `muax train pgx:tic_tac_toe`'s settings (`cli.compiled_setup`) and,
after every chunk, plays 200 greedy games against a uniformly random legal
opponent, the agent moving first in half of them. Prints one JSON line per
chunk (wins and losses as first and as second mover) and a summary line.
`--openings 0` trains without the random openings the CLI uses.

Usage: python benchmarks/compiled_tictactoe.py [--openings 3] [--max-training-steps 16000]
    [--seed 0]
"""
import argparse
import json
import time

import jax
import numpy as np

from muax import cli
from muax.loop.jitted import CompiledLoop


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--openings", type=int, default=None,
                      help="random opening moves (default: the CLI's)")
  parser.add_argument("--max-training-steps", type=int, default=16000)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  given = {"max_training_steps", "seed"}
  config = cli.config_from_args(dict(env_id="pgx:tic_tac_toe", seed=args.seed,
                                     max_training_steps=args.max_training_steps), given)
  if args.openings is not None:
    cli.OPENINGS = {**cli.OPENINGS, config.env_id: args.openings}
  setup = cli.compiled_setup(config)
  loop = CompiledLoop(setup["model"], setup["env"], config=setup["loop_config"],
                      test_env=setup["test_env"])
  state = loop.init(jax.random.PRNGKey(config.seed))
  rows, start = [], time.perf_counter()
  while int(state.env_steps) < setup["max_env_steps"]:
    state, _ = loop.run(state, setup["chunk"])
    scores = np.asarray(loop.evaluate(state.train.params,
                                      jax.random.PRNGKey(int(state.env_steps)), 200, 9))
    first, second = scores[0::2], scores[1::2]
    rows.append({"bench": "compiled_tictactoe", "openings": cli.OPENINGS[config.env_id],
                 "seed": config.seed, "moves": int(state.env_steps),
                 "updates": int(state.train.count),
                 "first_win": float((first > 0).mean()), "first_loss": float((first < 0).mean()),
                 "second_win": float((second > 0).mean()),
                 "second_loss": float((second < 0).mean()),
                 "seconds": round(time.perf_counter() - start, 1)})
    print(json.dumps(rows[-1]), flush=True)
  last = rows[-5:]
  print(json.dumps({"bench": "compiled_tictactoe_summary", "openings": rows[0]["openings"],
                    "seed": config.seed, "moves": rows[-1]["moves"],
                    "last5_first_loss_max": max(r["first_loss"] for r in last),
                    "last5_second_loss_max": max(r["second_loss"] for r in last),
                    "last5_second_loss_min": min(r["second_loss"] for r in last)}))


if __name__ == "__main__":
  main()
