"""Decisions/s of `act` on one CartPole observation and updates/s of `update`.

Prints JSON lines. Usage: python benchmarks/act_speed.py [--repeats 5]
"""
import argparse
import json
import time

import jax
import numpy as np

import muax
from muax import nn


def make_model(policy, support_size=10, embedding=8, num_actions=2):
  size = 2 * support_size + 1
  model = muax.MuZero(
      nn._init_representation_func(nn.Representation, embedding),
      nn._init_prediction_func(nn.Prediction, num_actions, size),
      nn._init_dynamic_func(nn.Dynamic, embedding, num_actions, size),
      policy=policy, support_size=support_size)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.float32))
  return model


def time_calls(fn, n, repeats):
  fn()  # compile
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(n):
      fn()
    rates.append(n / (time.perf_counter() - start))
  return float(np.median(rates))


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--calls", type=int, default=300)
  args = parser.parse_args()
  obs = np.array([0.01, -0.02, 0.03, 0.01], np.float32)
  key = np.asarray(jax.random.PRNGKey(1))
  for policy in ("muzero", "gumbel"):
    model = make_model(policy)
    rate = time_calls(lambda: model.act(key, obs, num_simulations=50, temperature=1.),
                      args.calls, args.repeats)
    print(json.dumps({"bench": "act", "policy": policy, "num_simulations": 50,
                      "decisions_per_s": round(rate, 1), "device": jax.devices()[0].platform}))
  model = make_model("muzero")
  rng = np.random.default_rng(0)
  batch_size, k = 256, 5
  batch = muax.Transition(
      obs=rng.normal(size=(batch_size, k, 4)).astype(np.float32),
      a=rng.integers(0, 2, (batch_size, k)).astype(np.int32),
      r=np.ones((batch_size, k), np.float32), done=np.zeros((batch_size, k), bool),
      Rn=rng.uniform(0, 50, (batch_size, k)).astype(np.float32),
      v=np.zeros((batch_size, k), np.float32),
      pi=np.full((batch_size, k, 2), 0.5, np.float32), w=np.ones((batch_size, k), np.float32))
  rate = time_calls(lambda: model.update(batch), args.calls, args.repeats)
  print(json.dumps({"bench": "update", "batch": batch_size, "k_steps": k,
                    "updates_per_s": round(rate, 1), "device": jax.devices()[0].platform}))


if __name__ == "__main__":
  main()
