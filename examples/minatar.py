"""MuZero from pixels on MinAtar Breakout (needs the minatar extra: pip install "muax[minatar]").

MinAtar's 10x10 frames go to residual conv nets without downsampling
(`nn.resnet_networks(..., downsample=1)`); replay stores them as uint8.

Run: python examples/minatar.py [--episodes 500] [--steps 5000]
Watch: tensorboard --logdir runs/tensorboard/minatar
"""
import argparse
import os
import sys

import numpy as np

# This file is named minatar.py: keep `import minatar` from finding it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import muax  # noqa: E402
from muax import envs  # noqa: E402
from muax import nn  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--game", default="breakout", choices=envs.MINATAR_GAMES)
  parser.add_argument("--episodes", type=int, default=500, help="training episodes at most")
  parser.add_argument("--steps", type=int, default=5000, help="updates at most")
  parser.add_argument("--num-simulations", type=int, default=16)
  parser.add_argument("--warm-up", type=int, default=20, help="episodes before learning")
  parser.add_argument("--test-interval", type=int, default=50)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args()

  env = envs.make_minatar(args.game, max_episode_steps=5000)
  test_env = envs.make_minatar(args.game, max_episode_steps=5000)
  support_size, discount = 10, 0.99
  model = muax.MuZero(
      *nn.resnet_networks(env.action_space.n, support_size, channels=16, num_blocks=1,
                          prediction_blocks=0, dynamic_blocks=1, downsample=1),
      policy="gumbel", discount=discount, support_size=support_size,
      optimizer=muax.model.optimizer(init_value=0., peak_value=3e-3, end_value=3e-4,
                                     warmup_steps=500, transition_steps=5000))
  result = muax.train.run(
      model, env=env, test_env=test_env, tracer=muax.PNStep(10, discount, 0.5),
      buffer=muax.TrajectoryReplayBuffer(5000, random_seed=args.seed,
                                         max_transitions=100_000, obs_dtype=np.uint8),
      max_episodes=args.episodes, max_training_steps=args.steps,
      num_simulations=args.num_simulations, k_steps=5, buffer_warm_up=args.warm_up,
      num_trajectory=16, sample_per_trajectory=2, num_update_per_episode=3,
      test_interval=args.test_interval, num_test_episodes=5,
      tensorboard_dir="runs/tensorboard/minatar", model_save_path="runs/models/minatar",
      random_seed=args.seed, progress=not args.no_progress)
  print(result.summary())


if __name__ == "__main__":
  main()
