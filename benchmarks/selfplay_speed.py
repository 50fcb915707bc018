"""Self-play decisions/s against the number of environments, and updates/s.

For num_envs = 1, 8, 64 (CartPole-v1, the CLI's CartPole-size networks) it
times `VectorCollector.step`: one batched search for all N environments, the
environments' step, and the N tracers, i.e. real self-play. It also times the
single-environment loop of the core issue (`model.act` on one observation,
then `env.step`), which `decisions_vs_single_loop` divides by. Then updates/s
at the README's batch (32 windows, K=10), one dispatch per update against
`update_many` (a `lax.scan` over 50 updates in one dispatch), and the time to
sample those 50 batches from a full 500-episode buffer.

Prints JSON lines; figures are medians over --repeats. Usage:
  python benchmarks/selfplay_speed.py [--repeats 5] [--envs 1 8 64]
"""
import argparse
import json
import time

import gymnasium as gym
import jax
import numpy as np

import muax
from muax import acting
from muax import cli

SETTINGS = (("muzero", 50), ("gumbel", 8))


def _method(model, name):
  """`model.<name>`, or `model._<name>` on releases that kept it private (so the
  same script measures the old and the new code side by side)."""
  return getattr(model, name, None) or getattr(model, "_" + name)


def make_model(policy):
  model = cli.build_model(cli.TrainConfig(env_id="CartPole-v1", policy=policy), 2)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.float32))
  return model


def single_loop_rate(model, num_simulations, steps, repeats):
  """Decisions/s of `act` on one observation followed by `env.step`."""
  env = gym.make("CartPole-v1")
  keys = acting.KeyStream(jax.random.PRNGKey(0))
  obs, _ = env.reset(seed=0)
  rates = []
  for repeat in range(repeats + 1):
    start = time.perf_counter()
    for _ in range(steps):
      a = model.act(keys(), obs, num_simulations=num_simulations, temperature=1.)
      obs, _, terminated, truncated, _ = env.step(a)
      if terminated or truncated:
        obs, _ = env.reset()
    if repeat:  # the first round compiles
      rates.append(steps / (time.perf_counter() - start))
  return float(np.median(rates))


def collector_rate(model, num_envs, num_simulations, steps, repeats):
  """Decisions/s of `VectorCollector.step` over N CartPole environments."""
  envs = acting.make_vector_env(lambda: gym.make("CartPole-v1"), num_envs, mode="sync")
  collector = acting.VectorCollector(model, envs, acting.KeyStream(jax.random.PRNGKey(0)),
                                     num_simulations=num_simulations,
                                     tracer=muax.PNStep(10, 0.99, 0.5), seed=0)
  rates = []
  for repeat in range(repeats + 1):
    start = time.perf_counter()
    for _ in range(steps):
      collector.step(1.)
    if repeat:
      rates.append(steps * num_envs / (time.perf_counter() - start))
  collector.close()
  return float(np.median(rates))


def collector_breakdown(model, num_envs, num_simulations, steps):
  """ms per collector step: waiting for the search, env step, next dispatch, tracers."""
  envs = acting.make_vector_env(lambda: gym.make("CartPole-v1"), num_envs, mode="sync")
  collector = acting.VectorCollector(model, envs, acting.KeyStream(jax.random.PRNGKey(0)),
                                     num_simulations=num_simulations,
                                     tracer=muax.PNStep(10, 0.99, 0.5), seed=0)
  for _ in range(10):
    collector.step(1.)
  parts = {"wait_search": 0., "env_step": 0., "dispatch": 0., "tracers": 0.}
  real = (collector.envs.step, collector._dispatch)

  def timed(name, fn):
    def wrapper(*args, **kwargs):
      start = time.perf_counter()
      out = fn(*args, **kwargs)
      parts[name] += time.perf_counter() - start
      return out
    return wrapper

  collector.envs.step = timed("env_step", real[0])
  collector._dispatch = timed("dispatch", real[1])
  start = time.perf_counter()
  for _ in range(steps):
    packed = collector._pending[-1]
    t = time.perf_counter()
    np.asarray(packed)  # the wait; step() below then finds it ready
    parts["wait_search"] += time.perf_counter() - t
    collector.step(1.)
  total = time.perf_counter() - start
  collector.close()
  parts["tracers"] = total - sum(parts.values())  # the rest of step(): bookkeeping
  return {k: round(1e3 * v / steps, 3) for k, v in parts.items()}


def update_rates(repeats, num_updates=50):
  model = make_model("muzero")
  rng = np.random.default_rng(0)

  def batch(lead):
    k = 10
    return muax.Transition(
        obs=rng.normal(size=lead + (k, 4)).astype(np.float32),
        a=rng.integers(0, 2, lead + (k,)).astype(np.int32),
        r=np.ones(lead + (k,), np.float32), done=np.zeros(lead + (k,), bool),
        Rn=rng.uniform(0, 50, lead + (k,)).astype(np.float32),
        v=np.zeros(lead + (k,), np.float32), pi=np.full(lead + (k, 2), .5, np.float32),
        w=np.ones(lead + (k,), np.float32))

  one, many = batch((32,)), batch((num_updates, 32))

  def unfused():
    jax.block_until_ready([_method(model, "update_async")(one) for _ in range(num_updates)])

  def fused():
    jax.block_until_ready(_method(model, "update_many_async")(many))

  out = {}
  for name, fn in (("per_dispatch", unfused), ("fused", fused)):
    fn()
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      fn()
      times.append((time.perf_counter() - start) / num_updates)
    out[name] = float(np.median(times))
  return out


def sample_ms(repeats, num_batches=50):
  """ms to sample `num_batches` README batches from a full 500-episode buffer."""
  rng = np.random.default_rng(0)
  buffer = muax.TrajectoryReplayBuffer(500, random_seed=0)
  for _ in range(500):
    length = int(rng.integers(20, 500))
    trajectory = muax.Trajectory()
    for t in range(length):
      trajectory.add(muax.Transition(obs=rng.normal(size=4).astype(np.float32), a=1, r=1.,
                                     done=t == length - 1, Rn=1., v=0.,
                                     pi=np.full(2, .5, np.float32), w=1.))
    trajectory.finalize()
    buffer.add(trajectory)
  buffer.sample(num_trajectory=32, k_steps=10, num_batches=num_batches)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    buffer.sample(num_trajectory=32, k_steps=10, num_batches=num_batches)
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 64])
  parser.add_argument("--decisions", type=int, default=3000,
                      help="decisions per timed round (per setting)")
  args = parser.parse_args()
  device = jax.devices()[0].platform
  for policy, sims in SETTINGS:
    model = make_model(policy)
    single = single_loop_rate(model, sims, args.decisions // 3, args.repeats)
    print(json.dumps({"bench": "single_env_act_loop", "policy": policy,
                      "num_simulations": sims, "decisions_per_s": round(single, 1),
                      "device": device}), flush=True)
    for n in args.envs:
      steps = max(10, args.decisions // n)
      rate = collector_rate(model, n, sims, steps, args.repeats)
      print(json.dumps({"bench": "selfplay", "policy": policy, "num_simulations": sims,
                        "num_envs": n, "decisions_per_s": round(rate, 1),
                        "decisions_vs_single_loop": round(rate / single, 2),
                        "device": device}), flush=True)
    if 64 in args.envs:
      print(json.dumps({"bench": "selfplay_breakdown_ms_per_step", "policy": policy,
                        "num_simulations": sims, "num_envs": 64,
                        **collector_breakdown(model, 64, sims, 200)}), flush=True)
  rates = update_rates(args.repeats)
  print(json.dumps({"bench": "update", "batch": 32, "k_steps": 10,
                    "ms_per_update_per_dispatch": round(1e3 * rates["per_dispatch"], 3),
                    "ms_per_update_fused_50": round(1e3 * rates["fused"], 3),
                    "device": device}), flush=True)
  print(json.dumps({"bench": "replay_sample", "batches": 50, "batch": 32, "k_steps": 10,
                    "buffer_episodes": 500, "ms": round(sample_ms(args.repeats), 3)}),
        flush=True)


if __name__ == "__main__":
  main()
