"""Env steps and wall-clock until CartPole-v1's first greedy test return >= 475.

Runs `muax train CartPole-v1` (the CLI's networks and defaults) with the
options given, once per seed, and prints one JSON line per seed and a
summary line with the medians. Usage:

  python benchmarks/cartpole_solve.py --seeds 0 1 2                  # CLI defaults
  python benchmarks/cartpole_solve.py --policy gumbel --num-simulations 4
  python benchmarks/cartpole_solve.py --num-envs 8
"""
import argparse
import dataclasses
import json
import tempfile

import numpy as np

from muax import cli

THRESHOLD = 475.


def solve_row(result, threshold, **fields) -> dict:
  """A JSON row: when a FitResult's first test reached `threshold`, and the run."""
  solved = result.first_reaching(threshold)
  return {**fields, "solved": solved is not None,
          "env_steps": solved.env_steps if solved else None,
          "wall_clock_s": round(solved.seconds, 1) if solved else None,
          "updates": solved.training_steps if solved else None,
          "best_test_return": result.best_test_return,
          "run_env_steps": result.env_steps, "run_wall_clock_s": round(result.seconds, 1)}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--policy", default=None, choices=("muzero", "gumbel"))
  parser.add_argument("--num-simulations", type=int, default=None)
  parser.add_argument("--num-envs", type=int, default=None)
  parser.add_argument("--max-training-steps", type=int, default=None)
  args = parser.parse_args()
  overrides = {k: v for k, v in (("policy", args.policy),
                                 ("num_simulations", args.num_simulations),
                                 ("num_envs", args.num_envs),
                                 ("max_training_steps", args.max_training_steps))
               if v is not None}
  config = dataclasses.replace(cli.TrainConfig(env_id="CartPole-v1"), progress=False,
                               target_return=THRESHOLD, **overrides)
  shown = {k: getattr(config, k) for k in ("policy", "num_simulations", "num_envs",
                                           "num_update_per_episode", "max_training_steps")}
  rows = []
  for seed in args.seeds:
    with tempfile.TemporaryDirectory() as workdir:
      result = cli.train(dataclasses.replace(config, seed=seed, logdir=f"{workdir}/tb",
                                             save_dir=f"{workdir}/models"))
    row = solve_row(result, THRESHOLD, bench="cartpole_solve", seed=seed, **shown)
    rows.append(row)
    print(json.dumps(row), flush=True)
  inf = float("inf")
  steps = [r["env_steps"] if r["solved"] else inf for r in rows]
  seconds = [r["wall_clock_s"] if r["solved"] else inf for r in rows]
  print(json.dumps({"bench": "cartpole_solve_summary", **shown, "seeds": args.seeds,
                    "solved": sum(r["solved"] for r in rows),
                    "median_env_steps": float(np.median(steps)),
                    "median_wall_clock_s": float(np.median(seconds))}), flush=True)


if __name__ == "__main__":
  main()
