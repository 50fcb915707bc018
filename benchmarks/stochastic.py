"""Stochastic MuZero against plain MuZero on `muax.stochastic.GambleEnv`.

Both policies get the same networks (sizes), budget (episodes, updates,
simulations) and seeds; each run ends with a greedy test of the final model
over `--final-test-episodes` episodes. Prints one JSON line per run and a
summary line per policy.

Measured (2-core CPU, default arguments, 2m54s): stochastic 7.0, 7.0, 4.0
(mean 6.0); muzero 8.0, 8.0, 8.0 (mean 8.0); 8 is optimal, 4 always-safe.
Plain MuZero is not held back by the coin here; Stochastic MuZero's codes
for the coin split late (seed 2 still played safe at 600 episodes).

Run: python benchmarks/stochastic.py            (about 3 minutes on 2 cores)
     python benchmarks/stochastic.py --seeds 0 --max-episodes 100   (a quick look)
"""
import argparse
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import muax  # noqa: E402
from muax import nn  # noqa: E402
from muax import stochastic  # noqa: E402
from muax.test import test as evaluate  # noqa: E402

NUM_ROUNDS = 4
DISCOUNT = 0.97
SETTINGS = dict(embedding_dim=16, hidden=64, support_size=10)


def make_model(policy: str, num_actions: int = 2, num_chance_outcomes: int = 32):
  """A Stochastic or plain MuZero with MLP networks of the same sizes."""
  optimizer = muax.model.optimizer(init_value=0.005, peak_value=0.005, end_value=0.001,
                                   warmup_steps=0, transition_steps=2000)
  if policy == "stochastic":
    return stochastic.build_model(num_actions, discount=DISCOUNT, optimizer=optimizer,
                                  num_chance_outcomes=num_chance_outcomes, **SETTINGS)
  size = 2 * SETTINGS["support_size"] + 1
  dim, hidden = SETTINGS["embedding_dim"], (SETTINGS["hidden"],)
  return muax.MuZero(
      nn._init_representation_func(nn.Representation, dim, hidden=hidden),
      nn._init_prediction_func(nn.Prediction, num_actions, size, hidden=hidden),
      nn._init_dynamic_func(nn.Dynamic, dim, num_actions, size, hidden=hidden),
      policy=policy, discount=DISCOUNT, optimizer=optimizer,
      support_size=SETTINGS["support_size"])


def make_env(safe_reward, cash_reward):
  return stochastic.GambleEnv(NUM_ROUNDS, safe_reward,
                              payoffs=((0., -cash_reward), (0., cash_reward)))


def train(policy: str, seed: int, *, max_episodes: int, num_simulations: int,
          final_test_episodes: int, save_dir: str, safe_reward, cash_reward) -> dict:
  """Trains one model with `muax.fit`; returns the benchmark record."""
  model = make_model(policy)
  start = time.time()
  env_fn = lambda: make_env(safe_reward, cash_reward)
  result = muax.train.run(
      model, env=env_fn(), test_env=env_fn(),
      tracer=muax.PNStep(10, DISCOUNT, 0.5), buffer=muax.TrajectoryReplayBuffer(400),
      max_episodes=max_episodes, test_interval=max_episodes, num_test_episodes=10,
      max_training_steps=100000, num_simulations=num_simulations, k_steps=5,
      buffer_warm_up=16, num_trajectory=32, sample_per_trajectory=2,
      num_update_per_episode=10, random_seed=seed, progress=False,
      tensorboard_dir=os.path.join(save_dir, "tb"),
      model_save_path=os.path.join(save_dir, f"{policy}_{seed}"),
      name=f"{policy}_{seed}")
  test_return = evaluate(model, env_fn(), jax.random.PRNGKey(seed),
                         num_simulations=num_simulations,
                         num_test_episodes=final_test_episodes, random_seed=1000 + seed)
  return {"policy": policy, "seed": seed, "test_return": round(test_return, 3),
          "env_steps": result.env_steps, "training_steps": result.training_steps,
          "wall_s": round(time.time() - start, 1)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--policies", nargs="+", default=["stochastic", "muzero"])
  parser.add_argument("--max-episodes", type=int, default=600)
  parser.add_argument("--num-simulations", type=int, default=32)
  parser.add_argument("--final-test-episodes", type=int, default=50)
  parser.add_argument("--safe-reward", type=float, default=3.)
  parser.add_argument("--cash-reward", type=float, default=4.)
  args = parser.parse_args(argv)
  records = []
  with tempfile.TemporaryDirectory() as save_dir:
    for seed in args.seeds:
      for policy in args.policies:
        record = train(policy, seed, max_episodes=args.max_episodes,
                       num_simulations=args.num_simulations,
                       final_test_episodes=args.final_test_episodes, save_dir=save_dir,
                       safe_reward=args.safe_reward, cash_reward=args.cash_reward)
        print(json.dumps(record), flush=True)
        records.append(record)
  for policy in args.policies:
    returns = [r["test_return"] for r in records if r["policy"] == policy]
    print(json.dumps({"summary": policy, "mean_test_return": round(float(np.mean(returns)), 3),
                      "test_returns": returns, "optimal": 2. * NUM_ROUNDS,
                      "always_safe": 1. * NUM_ROUNDS}), flush=True)


if __name__ == "__main__":
  main()
