"""Env steps/s of the compiled loop (muax.loop.jitted), learning included.

For each number of environments E and each search (gumbel 8, muzero 50
simulations) it runs the whole loop on the JAX CartPole of the tests (gymnax's
interface): search, step, autoreset, replay and `updates` updates of batch 64
per iteration. In the same run it times the search alone on E CartPole
observations (jitted, inputs on the device), the loop's upper bound:
`of_search` is the loop's env steps/s over the search's decisions/s.
Also in the same run, once per search, the host loop's self-play rate at
`--host-envs` gymnasium CartPole environments (`selfplay_speed.collector_rate`:
batched search, env step and tracers, no learning); `vs_host` is the compiled
loop's env steps/s over it. Compile time is reported separately.
`--replays uniform prioritized` times each replay in turn at every size (the
priorities' cumulative sum over the 20,000 stored steps per update).

Prints JSON lines. Usage:
  python benchmarks/compiled_speed.py [--envs 64 256 1024 4096] [--iterations 100]
      [--updates 1] [--host-envs 64] [--replays uniform prioritized] [--platform cpu|gpu]
"""
import argparse
import json
import os
import sys
import time

import jax
import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(_HERE, "..", "tests"), _HERE]

from jax_cartpole import CartPole  # noqa: E402 (tests/ holds the JAX CartPole)
from muax import cli  # noqa: E402
from muax.core.types import SearchBudget  # noqa: E402
from muax.core.types import SearchConfig  # noqa: E402
from muax.loop.jitted import CompiledConfig  # noqa: E402
from muax.loop.jitted import CompiledLoop  # noqa: E402
import selfplay_speed  # noqa: E402 (the host loop's self-play rate)

SETTINGS = (("gumbel", 8), ("muzero", 50))


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--envs", type=int, nargs="+", default=[64, 256, 1024])
  parser.add_argument("--iterations", type=int, default=100)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--updates", type=int, default=1, help="updates per iteration")
  parser.add_argument("--host-envs", type=int, default=64,
                      help="environments of the host loop's figure (0: none)")
  parser.add_argument("--replays", nargs="+", default=["uniform"],
                      choices=["uniform", "prioritized"])
  parser.add_argument("--platform", default=None)
  args = parser.parse_args()
  if args.platform:
    jax.config.update("jax_platform_name", args.platform)
  for policy, sims in SETTINGS:
    host_rate = None
    if args.host_envs:
      host_model = cli.build_model(cli.TrainConfig(env_id="CartPole-v1", policy=policy), 2)
      host_model.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.float32))
      host_rate = selfplay_speed.collector_rate(host_model, args.host_envs, sims, 50,
                                                args.repeats)
      print(json.dumps({"bench": "compiled_speed_host", "policy": policy,
                        "num_simulations": sims, "num_envs": args.host_envs,
                        "env_steps_per_s": round(host_rate, 1),
                        "device": jax.devices()[0].platform}), flush=True)
    for num_envs in args.envs:
      loop_rates = {}
      for replay in args.replays:
        model = cli.build_model(cli.TrainConfig(env_id="CartPole-v1", policy=policy), 2)
        model.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.float32))
        loop = CompiledLoop(model, CartPole(), config=CompiledConfig(
            num_envs=num_envs, num_simulations=sims, updates_per_iteration=args.updates,
            capacity=max(64, 20_000 // num_envs), learning_starts=16, replay=replay))
        state = loop.init(jax.random.PRNGKey(1))
        start = time.perf_counter()
        state, metrics = loop.run(state, args.iterations)
        jax.block_until_ready(metrics)
        compile_s = time.perf_counter() - start
        rates = []
        for _ in range(args.repeats):
          start = time.perf_counter()
          state, metrics = loop.run(state, args.iterations)
          jax.block_until_ready(metrics)
          rates.append(num_envs * args.iterations / (time.perf_counter() - start))
        loop_rates[replay] = (float(np.median(rates)), compile_s)
      search = jax.jit(lambda p, k, o, m, c: model.variant.search(
          p, k, o, m, c, SearchBudget(num_simulations=sims)))
      obs = jax.device_put(np.asarray(state.obs))
      mask = jax.numpy.zeros((num_envs, 2), jax.numpy.float32)
      config = SearchConfig.of(*(jax.numpy.float32(x) for x in (1., .25, .3, 1.25, 19652., 1.)))
      key = jax.random.PRNGKey(2)
      jax.block_until_ready(search(state.train.params, key, obs, mask, config))
      search_rates = []
      for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(20):
          out = search(state.train.params, key, obs, mask, config)
        jax.block_until_ready(out)
        search_rates.append(20 * num_envs / (time.perf_counter() - start))
      search_rate = float(np.median(search_rates))
      for replay, (loop_rate, compile_s) in loop_rates.items():
        print(json.dumps({
            "bench": "compiled_speed", "policy": policy, "num_simulations": sims,
            "num_envs": num_envs, "replay": replay, "updates_per_iteration": args.updates,
            "batch_size": 64, "env_steps_per_s": round(loop_rate, 1),
            "search_decisions_per_s": round(search_rate, 1),
            "of_search": round(loop_rate / search_rate, 3), "compile_s": round(compile_s, 1),
            "vs_host": round(loop_rate / host_rate, 2) if host_rate else None,
            "device": jax.devices()[0].platform}), flush=True)


if __name__ == "__main__":
  main()
