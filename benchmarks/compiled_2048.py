"""pgx 2048 in the compiled loop: Stochastic MuZero against plain MuZero on the same budget.

2048's chance is the new tile (a 2 or a 4 on a random empty square) after each
move. Stochastic MuZero (`--policy stochastic`) learns codes for it and
searches over afterstates; plain MuZero (`--policy muzero`, the same pUCT
search) folds it into a deterministic model. For each seed and policy, trains
with `muax train pgx:2048`'s settings (`cli_compiled.compiled_setup`; `--set
KEY=VALUE` overrides any option, e.g. `max_training_steps=4000`), and after
every chunk plays `--test-games` greedy games (at most `--test-steps` moves
each); prints one JSON line per chunk, a summary per run (the last and the best
mean score, the mean of the last three tests) and one line per policy with the
medians over seeds. The first line is the score of uniformly random legal
moves, for scale. Scores are 2048's own: the sum of the merged tiles.

Usage: python benchmarks/compiled_2048.py [--policies stochastic muzero] [--seeds 0 1 2]
    [--set KEY=VALUE ...] [--test-games 32] [--test-steps 2000] [--platform cpu|gpu]
"""
import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compiled_cartpole import override  # noqa: E402

from muax import cli  # noqa: E402
from muax import cli_compiled  # noqa: E402
from muax import jax_envs  # noqa: E402
from muax.loop.jitted import CompiledLoop  # noqa: E402


def random_score(games: int, max_steps: int, seed: int = 0) -> float:
  """The mean score of uniformly random legal moves over `games` games."""
  env = jax_envs.make("pgx:2048")

  def play(key):
    k_reset, key = jax.random.split(key)
    obs, state = env.reset_env(k_reset, env.default_params)

    def step(carry):
      t, state, total, running, key = carry
      key, k_act, k_step = jax.random.split(key, 3)
      action = jax.random.categorical(k_act, jnp.where(env.legal_actions(state), 0., -jnp.inf))
      _, state, reward, done, _ = env.step_env(k_step, state, action, env.default_params)
      return t + 1, state, total + jnp.where(running, reward, 0.), running & ~done, key

    carry = (jnp.int32(0), state, jnp.float32(0.), jnp.bool_(True), key)
    return jax.lax.while_loop(lambda c: (c[0] < max_steps) & c[3], step, carry)[2]

  keys = jax.random.split(jax.random.PRNGKey(seed), games)
  return float(jnp.mean(jax.jit(jax.vmap(play))(keys)))


def train(policy, seed, overrides, games, max_steps):
  values = dict(env_id="pgx:2048", policy=policy, seed=seed, **overrides)
  config = cli.config_from_args(values, given=set(values))
  setup = cli_compiled.compiled_setup(config)
  loop = CompiledLoop(setup["model"], setup["env"], config=setup["loop_config"])
  state = loop.init(jax.random.PRNGKey(seed))
  rows, start = [], time.perf_counter()
  while int(state.env_steps) < setup["max_env_steps"]:
    state, metrics = loop.run(state, setup["chunk"])
    scores = np.asarray(loop.evaluate(state.train.params,
                                      jax.random.PRNGKey(int(state.env_steps)), games, max_steps))
    loss = np.asarray(metrics["loss"])
    rows.append({"bench": "compiled_2048", "policy": policy, "seed": seed,
                 "env_steps": int(state.env_steps), "updates": int(state.train.count),
                 "test_mean": round(float(scores.mean()), 1),
                 "test_max": round(float(scores.max()), 1),
                 "loss": round(float(np.nanmean(loss)), 4) if np.isfinite(loss).any() else None,
                 "seconds": round(time.perf_counter() - start, 1)})
    print(json.dumps(rows[-1]), flush=True)
  tests = [r["test_mean"] for r in rows]
  return {"bench": "compiled_2048_run", "policy": policy, "seed": seed,
          "overrides": overrides, "env_steps": rows[-1]["env_steps"],
          "updates": rows[-1]["updates"], "last_test": tests[-1], "best_test": max(tests),
          "last3_mean": round(float(np.mean(tests[-3:])), 1),
          "seconds": rows[-1]["seconds"], "device": jax.devices()[0].platform}


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--policies", nargs="+", default=["stochastic", "muzero"])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--set", type=override, nargs="*", default=[], metavar="KEY=VALUE",
                      help="muax train options to override, e.g. max_training_steps=4000")
  parser.add_argument("--test-games", type=int, default=32)
  parser.add_argument("--test-steps", type=int, default=2000)
  parser.add_argument("--platform", default=None)
  args = parser.parse_args()
  if args.platform:
    jax.config.update("jax_platform_name", args.platform)
  print(json.dumps({"bench": "compiled_2048_random", "games": 256,
                    "mean_score": round(random_score(256, args.test_steps), 1)}), flush=True)
  runs = {policy: [] for policy in args.policies}
  for seed in args.seeds:  # the policies alternate, seed by seed
    for policy in args.policies:
      runs[policy].append(train(policy, seed, dict(args.set), args.test_games, args.test_steps))
      print(json.dumps(runs[policy][-1]), flush=True)
  for policy, rows in runs.items():
    print(json.dumps({"bench": "compiled_2048_summary", "policy": policy,
                      "overrides": dict(args.set), "seeds": len(rows),
                      "median_last3": float(np.median([r["last3_mean"] for r in rows])),
                      "median_best": float(np.median([r["best_test"] for r in rows])),
                      "per_seed_last3": [r["last3_mean"] for r in rows],
                      "median_seconds": float(np.median([r["seconds"] for r in rows]))}))


if __name__ == "__main__":
  main()
