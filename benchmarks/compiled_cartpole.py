"""gymnax CartPole-v1 in the compiled loop: env steps and seconds to a greedy test >= 475.

For each seed, trains with `muax train gymnax:CartPole-v1`'s settings
(`cli_compiled.compiled_setup`: the CLI's CartPole networks, Gumbel 8 over 16
environments; any option of `muax train` can be overridden, e.g. `--set
discount=0.99`), testing 8 greedy episodes after every chunk; prints one JSON
line per seed and a last line with the medians and the share of seeds solved.
`compile_s` is compilation plus one warm-up chunk on a throwaway state;
`seconds` is the timed run alone, tests included. Needs gymnax (`pip install
"muax[jax-envs]"`).

Usage: python benchmarks/compiled_cartpole.py [--seeds 0 1 2 3 4] [--set KEY=VALUE ...]
    [--max-env-steps 200000] [--chunk 250] [--platform cpu|gpu]
"""
import argparse
import ast
import json
import time

import jax
import numpy as np

from muax import cli
from muax import cli_compiled
from muax.loop.jitted import CompiledLoop


def solve(seed, overrides, max_env_steps, chunk, env_id="gymnax:CartPole-v1", goal=475.,
          test_episodes=8, bench="compiled_cartpole"):
  """Trains one seed until the mean of `test_episodes` greedy episodes reaches
  `goal` (or `max_env_steps`); returns its JSON row."""
  values = dict(env_id=env_id, seed=seed, **overrides)
  setup = cli_compiled.compiled_setup(cli.config_from_args(values, given=set(values)))
  loop = CompiledLoop(setup["model"], setup["env"], config=setup["loop_config"])
  cfg, test_steps = setup["loop_config"], setup["test_max_steps"]
  # Compile on a throwaway state (one chunk and one test), then time a fresh run.
  start = time.perf_counter()
  warm, _ = loop.run(loop.init(jax.random.PRNGKey(seed + 2000)), chunk)
  jax.block_until_ready(loop.evaluate(warm.train.params, jax.random.PRNGKey(0), test_episodes,
                                      test_steps))
  compile_s = time.perf_counter() - start
  state = loop.init(jax.random.PRNGKey(seed + 1000))
  start, best, solved_at = time.perf_counter(), -np.inf, None
  while int(state.env_steps) < max_env_steps:
    state, _ = loop.run(state, chunk)
    test = float(np.mean(loop.evaluate(state.train.params, jax.random.PRNGKey(int(state.env_steps)),
                                       test_episodes, test_steps)))
    best = max(best, test)
    if test >= goal:
      solved_at = int(state.env_steps)
      break
  return {"bench": bench, "seed": seed, "overrides": overrides,
          "num_envs": cfg.num_envs, "updates_per_iteration": cfg.updates_per_iteration,
          "num_simulations": cfg.num_simulations,
          "solved": solved_at is not None, "env_steps": solved_at or int(state.env_steps),
          "updates": int(state.train.count), "seconds": round(time.perf_counter() - start, 1),
          "compile_s": round(compile_s, 1), "best_test": round(best, 1),
          "device": jax.devices()[0].platform}


def override(text):
  """`KEY=VALUE` of `--set` as (key, Python literal or string)."""
  key, _, value = text.partition("=")
  try:
    return key.replace("-", "_"), ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return key.replace("-", "_"), value


def main(env_id="gymnax:CartPole-v1", goal=475., seeds=(0, 1, 2, 3, 4), max_env_steps=200_000,
         chunk=250, test_episodes=8, bench="compiled_cartpole", doc=__doc__):
  """Parses the command line (these are its defaults), runs `solve` per seed
  and prints the rows and a summary (`compiled_pendulum.py` runs it too)."""
  parser = argparse.ArgumentParser(description=doc)
  parser.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
  parser.add_argument("--goal", type=float, default=goal, help="the mean test return to reach")
  parser.add_argument("--set", type=override, nargs="*", default=[], metavar="KEY=VALUE",
                      help="muax train options to override, e.g. num_envs=64 discount=0.99")
  parser.add_argument("--max-env-steps", type=int, default=max_env_steps)
  parser.add_argument("--chunk", type=int, default=chunk, help="iterations between tests")
  parser.add_argument("--platform", default=None)
  args = parser.parse_args()
  if args.platform:
    jax.config.update("jax_platform_name", args.platform)
  rows = []
  for seed in args.seeds:
    rows.append(solve(seed, dict(args.set), args.max_env_steps, args.chunk, env_id=env_id,
                      goal=args.goal, test_episodes=test_episodes, bench=bench))
    print(json.dumps(rows[-1]), flush=True)
  solved = [r for r in rows if r["solved"]]
  print(json.dumps({"bench": f"{bench}_summary", "overrides": dict(args.set), "goal": args.goal,
                    "seeds": len(rows), "solved": len(solved),
                    "median_env_steps": float(np.median([r["env_steps"] for r in rows])),
                    "median_seconds": float(np.median([r["seconds"] for r in rows])),
                    "median_compile_s": float(np.median([r["compile_s"] for r in rows]))}))


if __name__ == "__main__":
  main()
