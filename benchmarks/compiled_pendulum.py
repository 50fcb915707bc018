"""gymnax Pendulum-v1 in the compiled loop (Sampled MuZero): env steps and seconds to -200.

For each seed, trains with `muax train gymnax:Pendulum-v1`'s settings
(`cli_compiled.compiled_setup`: policy sampled with the host loop's Pendulum
settings, 16 torques sampled per node, Gumbel 16, over 16 environments; `--set
KEY=VALUE` overrides any option), testing 16 greedy episodes after every chunk
until their mean reaches `--goal` (as `benchmarks/pendulum.py` does for the
host loop); prints one JSON line per seed and a last line with the medians and
the share of seeds that reached it. A random policy scores about -1,200.
Needs gymnax (`pip install "muax[jax-envs]"`).

Usage: python benchmarks/compiled_pendulum.py [--seeds 0 1 2] [--goal -200]
    [--set KEY=VALUE ...] [--max-env-steps 60000] [--chunk 100] [--platform cpu|gpu]
"""
import argparse
import json

import jax
import numpy as np

from compiled_cartpole import override
from compiled_cartpole import solve


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--goal", type=float, default=-200.)
  parser.add_argument("--set", type=override, nargs="*", default=[], metavar="KEY=VALUE",
                      help="muax train options to override, e.g. num_envs=64")
  parser.add_argument("--max-env-steps", type=int, default=60_000)
  parser.add_argument("--chunk", type=int, default=100, help="iterations between tests")
  parser.add_argument("--platform", default=None)
  args = parser.parse_args()
  if args.platform:
    jax.config.update("jax_platform_name", args.platform)
  rows = []
  for seed in args.seeds:
    rows.append(solve(seed, dict(args.set), args.max_env_steps, args.chunk,
                      env_id="gymnax:Pendulum-v1", goal=args.goal, test_episodes=16,
                      bench="compiled_pendulum"))
    print(json.dumps(rows[-1]), flush=True)
  print(json.dumps({"bench": "compiled_pendulum_summary", "overrides": dict(args.set),
                    "goal": args.goal, "seeds": len(rows),
                    "reached": sum(r["solved"] for r in rows),
                    "median_env_steps": float(np.median([r["env_steps"] for r in rows])),
                    "median_seconds": float(np.median([r["seconds"] for r in rows])),
                    "median_compile_s": float(np.median([r["compile_s"] for r in rows]))}))


if __name__ == "__main__":
  main()
