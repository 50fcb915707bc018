"""Where a README-style `model.act` loop spends its time, on one CartPole observation.

Prints one JSON line per policy: microseconds per decision (medians of
`--repeats` rounds) for
- `readme_loop`: `key, sub = jax.random.split(key); model.act(sub, obs, ...)`,
  the loop the README shows;
- `act`: `model.act` with a fixed key (no split);
- `split`: `jax.random.split` alone, un-jitted, as user code calls it;
- `search`: the jitted search alone (`model.search` under `jax.jit`, inputs
  already on the device, waiting for the result): what `act` cannot avoid;
- `dispatch_floor`: a trivial jitted function taking the same arguments
  (params, key, observation, mask, settings) and returning one array: JAX's
  own cost per call on this machine;
and `act_overhead` = `act - search`, the part of `act` spent outside the search.
`act_overhead_paired` measures the same part call by call: `act` and the
search alone run back to back (in alternating order) `--calls x --repeats`
times, and the median of their differences is taken, which a shared machine's
slow drifts affect much less than the difference of two medians.

Usage: python benchmarks/act_loop.py [--simulations 50] [--repeats 5] [--calls 300]
Runs against any muax on PYTHONPATH that has `MuZero.search` (0.2+); with an
older one, `search` and `act_overhead` are left out.
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from act_speed import make_model  # benchmarks/ is the script's folder


def microseconds(fns, calls, repeats):
  """Median microseconds per call of each function, rounds interleaved."""
  for fn in fns.values():
    fn()
    fn()
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      for _ in range(calls):
        fn()
      times[name].append((time.perf_counter() - start) / calls)
  return {name: round(1e6 * float(np.median(t)), 1) for name, t in times.items()}


def paired_difference(first, second, pairs):
  """Median microseconds of `first() - second()`, timed back to back, the
  order alternating from pair to pair."""
  first(), second()
  diffs = []
  for i in range(pairs):
    if i % 2:
      t0 = time.perf_counter()
      second()
      t1 = time.perf_counter()
      first()
      t2 = time.perf_counter()
      diffs.append((t2 - t1) - (t1 - t0))
    else:
      t0 = time.perf_counter()
      first()
      t1 = time.perf_counter()
      second()
      t2 = time.perf_counter()
      diffs.append((t1 - t0) - (t2 - t1))
  return round(1e6 * float(np.median(diffs)), 1)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--simulations", type=int, default=50)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--calls", type=int, default=300)
  args = parser.parse_args()
  sims = args.simulations
  obs = np.array([0.01, -0.02, 0.03, 0.01], np.float32)
  for policy in ("muzero", "gumbel"):
    model = make_model(policy)
    state = {"key": jax.random.PRNGKey(1)}
    fixed = jax.random.PRNGKey(2)

    def readme_loop():
      state["key"], sub = jax.random.split(state["key"])
      return model.act(sub, obs, num_simulations=sims, temperature=0.)

    fns = {"readme_loop": readme_loop,
           "act": lambda: model.act(fixed, obs, num_simulations=sims, temperature=0.),
           "split": lambda: jax.random.split(fixed)}
    params, batch = model.params, jnp.asarray(obs[None])
    mask = jnp.zeros((1, model.num_actions), jnp.float32)
    floor = jax.jit(lambda p, k, o, m, h: jnp.concatenate([o, m], -1) + h[0])
    fns["dispatch_floor"] = lambda: np.asarray(
        floor(params, fixed, np.asarray(obs[None]), np.zeros((1, 2), np.float32),
              np.zeros(6, np.float32)))
    if hasattr(model, "search"):
      from muax.core.types import SearchBudget, SearchConfig
      config = SearchConfig.greedy()
      budget = SearchBudget(num_simulations=sims)
      search = jax.jit(lambda p, k, o, m, c: model.search(p, k, o, m, c, budget))
      fns["search"] = lambda: jax.block_until_ready(search(params, fixed, batch, mask, config))
    result = microseconds(fns, args.calls, args.repeats)
    if "search" in result:
      result["act_overhead"] = round(result["act"] - result["search"], 1)
      result["act_overhead_paired"] = paired_difference(fns["act"], fns["search"],
                                                        args.calls * args.repeats)
    print(json.dumps({"bench": "act_loop", "policy": policy, "num_simulations": sims,
                      "unit": "us_per_decision", **result,
                      "readme_loop_decisions_per_s": round(1e6 / result["readme_loop"], 1),
                      "device": jax.devices()[0].platform}), flush=True)


if __name__ == "__main__":
  main()
