"""CartPole-v1 in the compiled loop: env steps and seconds to a greedy test >= 475.

For each seed, runs `muax.loop.jitted.CompiledLoop` on the JAX CartPole of the
tests (gymnax's interface, gymnasium's dynamics) with the CLI's CartPole
networks and Gumbel 8, testing 8 greedy episodes after every chunk; prints
one JSON line per seed and a last line with the medians and the share of
seeds solved. `compile_s` is compilation plus one warm-up chunk on a throwaway
state; `seconds` is the timed run alone, tests included.

Usage: python benchmarks/compiled_cartpole.py [--seeds 0 1 2 3 4] [--num-envs 16]
    [--updates 1] [--max-env-steps 200000] [--platform cpu|gpu]
"""
import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from jax_cartpole import CartPole  # noqa: E402 (tests/ holds the JAX CartPole)
from muax import cli  # noqa: E402
from muax.loop.jitted import CompiledConfig  # noqa: E402
from muax.loop.jitted import CompiledLoop  # noqa: E402


def solve(seed, num_envs, updates, max_env_steps, chunk, simulations):
  model = cli.build_model(cli.TrainConfig(env_id="CartPole-v1", policy="gumbel"), 2)
  model.init(jax.random.PRNGKey(seed), np.zeros((1, 4), np.float32))
  loop = CompiledLoop(model, CartPole(), config=CompiledConfig(
      num_envs=num_envs, num_simulations=simulations, updates_per_iteration=updates,
      batch_size=64, capacity=max(64, 16_000 // num_envs), learning_starts=max(1, 256 // num_envs)))
  # Compile on a throwaway state (one chunk and one test), then time a fresh run.
  start = time.perf_counter()
  warm, _ = loop.run(loop.init(jax.random.PRNGKey(seed + 2000)), chunk)
  jax.block_until_ready(loop.evaluate(warm.train.params, jax.random.PRNGKey(0), 8, 500))
  compile_s = time.perf_counter() - start
  state = loop.init(jax.random.PRNGKey(seed + 1000))
  start, best, solved_at = time.perf_counter(), 0., None
  while int(state.env_steps) < max_env_steps:
    state, _ = loop.run(state, chunk)
    test = float(np.mean(loop.evaluate(state.train.params, jax.random.PRNGKey(int(state.env_steps)),
                                       8, 500)))
    best = max(best, test)
    if test >= 475:
      solved_at = int(state.env_steps)
      break
  return {"bench": "compiled_cartpole", "seed": seed, "num_envs": num_envs,
          "updates_per_iteration": updates, "num_simulations": simulations,
          "solved": solved_at is not None, "env_steps": solved_at or int(state.env_steps),
          "updates": int(state.train.count), "seconds": round(time.perf_counter() - start, 1),
          "compile_s": round(compile_s, 1), "best_test": round(best, 1),
          "device": jax.devices()[0].platform}


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
  parser.add_argument("--num-envs", type=int, default=16)
  parser.add_argument("--updates", type=int, default=1, help="updates per iteration")
  parser.add_argument("--simulations", type=int, default=8)
  parser.add_argument("--max-env-steps", type=int, default=200_000)
  parser.add_argument("--chunk", type=int, default=250, help="iterations between tests")
  parser.add_argument("--platform", default=None)
  args = parser.parse_args()
  if args.platform:
    jax.config.update("jax_platform_name", args.platform)
  rows = []
  for seed in args.seeds:
    rows.append(solve(seed, args.num_envs, args.updates, args.max_env_steps, args.chunk,
                      args.simulations))
    print(json.dumps(rows[-1]), flush=True)
  solved = [r for r in rows if r["solved"]]
  print(json.dumps({"bench": "compiled_cartpole_summary", "seeds": len(rows),
                    "solved": len(solved),
                    "median_env_steps": float(np.median([r["env_steps"] for r in rows])),
                    "median_seconds": float(np.median([r["seconds"] for r in rows])),
                    "median_compile_s": float(np.median([r["compile_s"] for r in rows]))}))


if __name__ == "__main__":
  main()
