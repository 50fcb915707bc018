"""gymnax MinAtar in the compiled loop: greedy test returns against env steps.

Trains with `muax train gymnax:<Game>-MinAtar`'s settings
(`cli_compiled.compiled_setup`; any option of `muax train` can be overridden,
e.g. `--set num_envs=32 num_simulations=8`) for `--env-steps` steps, testing
`--test-episodes` greedy episodes after every chunk, and prints one JSON line
per test, then a summary line with the best and last test and a uniformly
random policy's mean return on the same environment. `compile_s` is
compilation plus one warm-up chunk on a throwaway state; `seconds` is the timed
run alone, tests included. gymnax's MinAtar has no sticky actions and its
games' minimal action sets (Breakout: 3), unlike `benchmarks/minatar.py`'s
(sticky actions 0.1, all 6 actions). Needs gymnax (`pip install
"muax[jax-envs]"`).

Usage: python benchmarks/compiled_minatar.py [--game Breakout-MinAtar] [--seed 0]
    [--env-steps 100000] [--chunk 50] [--test-episodes 32] [--set KEY=VALUE ...]
    [--platform cpu|gpu]
"""
import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from muax import cli
from muax import cli_compiled
from muax.loop.jitted import CompiledLoop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compiled_cartpole  # noqa: E402 (its --set parser)


def random_returns(env, key, episodes, max_steps):
  """Undiscounted returns of a uniformly random policy, all episodes together."""
  k_reset, key = jax.random.split(key)
  obs, state = jax.vmap(env.reset_env)(jax.random.split(k_reset, episodes))

  def step(carry, key):
    state, total, running = carry
    k_action, k_step = jax.random.split(key)
    action = jax.random.randint(k_action, (episodes,), 0, env.num_actions)
    _, state, reward, done, _ = jax.vmap(env.step_env)(jax.random.split(k_step, episodes),
                                                       state, action)
    return (state, total + jnp.where(running, reward, 0.), running & ~done), None

  init = (state, jnp.zeros((episodes,)), jnp.ones((episodes,), bool))
  (_, total, _), _ = jax.lax.scan(step, init, jax.random.split(key, max_steps))
  return total


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--game", default="Breakout-MinAtar")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--env-steps", type=int, default=100_000)
  parser.add_argument("--chunk", type=int, default=50, help="iterations between tests")
  parser.add_argument("--test-episodes", type=int, default=32)
  parser.add_argument("--set", type=compiled_cartpole.override, nargs="*", default=[], metavar="KEY=VALUE",
                      help="muax train options to override, e.g. num_envs=32")
  parser.add_argument("--platform", default=None)
  args = parser.parse_args()
  if args.platform:
    jax.config.update("jax_platform_name", args.platform)
  values = dict(env_id=f"gymnax:{args.game}", seed=args.seed, **dict(args.set))
  setup = cli_compiled.compiled_setup(cli.config_from_args(values, given=set(values)))
  env, cfg, steps = setup["env"], setup["loop_config"], setup["test_max_steps"]
  loop = CompiledLoop(setup["model"], env, config=cfg)
  random = float(np.mean(random_returns(env, jax.random.PRNGKey(args.seed), 1000, steps)))
  start = time.perf_counter()
  warm, _ = loop.run(loop.init(jax.random.PRNGKey(args.seed + 2000)), args.chunk)
  jax.block_until_ready(loop.evaluate(warm.train.params, jax.random.PRNGKey(0),
                                      args.test_episodes, steps))
  compile_s = time.perf_counter() - start
  state = loop.init(jax.random.PRNGKey(args.seed + 1000))
  rows, start = [], time.perf_counter()
  while int(state.env_steps) < args.env_steps:
    state, metrics = loop.run(state, args.chunk)
    test = loop.evaluate(state.train.params, jax.random.PRNGKey(int(state.env_steps)),
                         args.test_episodes, steps)
    rows.append({"bench": "compiled_minatar", "game": args.game, "seed": args.seed,
                 "env_steps": int(state.env_steps), "updates": int(state.train.count),
                 "test_return": round(float(np.mean(test)), 2),
                 "loss": round(float(np.nanmean(np.asarray(metrics["loss"]))), 3),
                 "seconds": round(time.perf_counter() - start, 1)})
    print(json.dumps(rows[-1]), flush=True)
  print(json.dumps({"bench": "compiled_minatar_summary", "game": args.game, "seed": args.seed,
                    "overrides": dict(args.set), "num_envs": cfg.num_envs,
                    "num_simulations": cfg.num_simulations,
                    "updates_per_iteration": cfg.updates_per_iteration,
                    "env_steps": rows[-1]["env_steps"], "updates": rows[-1]["updates"],
                    "best_test": max(r["test_return"] for r in rows),
                    "last_test": rows[-1]["test_return"], "random_policy": round(random, 2),
                    "seconds": rows[-1]["seconds"], "compile_s": round(compile_s, 1),
                    "env_steps_per_s": round(rows[-1]["env_steps"] / rows[-1]["seconds"]),
                    "device": jax.devices()[0].platform}))


if __name__ == "__main__":
  main()
