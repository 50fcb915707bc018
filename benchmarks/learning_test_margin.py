"""How much margin the CI learning tests have: their exact configurations over many seeds.

--test muzero: tests/test_train.py::test_fit_solves_cartpole_195 (README networks, 50
simulations); --test gumbel4: tests/test_vectorized.py::test_gumbel_at_4_simulations_learns_cartpole
(the CLI's networks, gumbel, 4 simulations). Both run seed 0 and assert a greedy test
>= 195 within 3,000 updates. This prints, per seed, the best test return, the updates it
took and the wall-clock, as JSON lines. Usage:
  python benchmarks/learning_test_margin.py --test gumbel4 --seeds 0 1 2 3 4 5 6
"""
import argparse
import json
import tempfile
import time

import jax
import numpy as np

import muax
from muax import nn


def run(seed):
  size = 21
  model = muax.MuZero(
      nn._init_representation_func(nn.Representation, 8),
      nn._init_prediction_func(nn.Prediction, 2, size),
      nn._init_dynamic_func(nn.Dynamic, 8, 2, size), discount=0.99, support_size=10,
      optimizer=muax.model.optimizer(init_value=0.02, peak_value=0.02, end_value=0.002,
                                     warmup_steps=5000, transition_steps=5000))
  model.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.float32))
  with tempfile.TemporaryDirectory() as workdir:
    return muax.train.run(
        model, env_id="CartPole-v1", tracer=muax.PNStep(10, 0.99, 0.5),
        buffer=muax.TrajectoryReplayBuffer(500, random_seed=seed), max_episodes=60,
        max_training_steps=3000, test_interval=5, num_test_episodes=5, k_steps=10,
        num_trajectory=32, sample_per_trajectory=1, buffer_warm_up=32, num_simulations=50,
        random_seed=seed, target_return=195., tensorboard_dir=workdir,
        model_save_path=f"{workdir}/m", progress=False)


def run_gumbel4(seed):
  from muax import cli
  model = cli.build_model(cli.TrainConfig(env_id="CartPole-v1", policy="gumbel",
                                          num_simulations=4), 2)
  with tempfile.TemporaryDirectory() as workdir:
    return muax.train.run(
        model, env_id="CartPole-v1", tracer=muax.PNStep(10, 0.99, 0.5),
        buffer=muax.TrajectoryReplayBuffer(500, random_seed=seed), max_episodes=80,
        max_training_steps=3000, test_interval=5, num_test_episodes=5, k_steps=10,
        num_trajectory=32, sample_per_trajectory=1, buffer_warm_up=32, num_simulations=4,
        random_seed=seed, target_return=195., tensorboard_dir=workdir,
        model_save_path=f"{workdir}/m", progress=False)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
  parser.add_argument("--test", choices=("muzero", "gumbel4"), default="muzero")
  args = parser.parse_args()
  for seed in args.seeds:
    start = time.perf_counter()
    result = (run if args.test == "muzero" else run_gumbel4)(seed)
    print(json.dumps({"bench": "learning_test_margin", "test": args.test, "seed": seed,
                      "best_test_return": result.best_test_return,
                      "updates": result.training_steps,
                      "wall_clock_s": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
  main()
