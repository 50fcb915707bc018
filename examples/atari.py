"""MuZero from pixels on Atari (needs the atari extra: pip install "muax[atari]").

Frames are preprocessed as in the papers (frame skip 4 with max-pooling, up
to 30 no-ops after reset, sticky actions off), resized to 96x96 grayscale and
stacked with the actions that led to them: observations `[96, 96, 2 * N]`
uint8 for N stacked frames. The representation downsamples them MuZero-style
to 6x6 planes (`nn.resnet_networks(..., downsample='muzero')`). The defaults
only show that everything runs; real training wants a GPU and
`--episodes 10000 --steps 100000`.

Run: python examples/atari.py [--game Breakout] [--episodes 3] [--steps 50]
"""
import argparse

import numpy as np

import muax
from muax import envs
from muax import nn


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--game", default="Breakout", help="ALE game, e.g. Breakout or Pong")
  parser.add_argument("--episodes", type=int, default=3, help="training episodes at most")
  parser.add_argument("--steps", type=int, default=50, help="updates at most")
  parser.add_argument("--frame-stack", type=int, default=4)
  parser.add_argument("--num-simulations", type=int, default=8)
  parser.add_argument("--warm-up", type=int, default=1, help="episodes before learning")
  parser.add_argument("--max-episode-steps", type=int, default=1000,
                      help="cut episodes (an untrained Breakout agent may never FIRE)")
  parser.add_argument("--replay-gb", type=float, default=1., help="replay memory bound")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args()

  def make():
    return envs.make_atari(args.game, frame_stack=args.frame_stack,
                           max_episode_steps=args.max_episode_steps)

  env, test_env = make(), make()
  support_size, discount = 10, 0.997
  model = muax.MuZero(
      *nn.resnet_networks(env.action_space.n, support_size, channels=32, num_blocks=1,
                          prediction_blocks=0, dynamic_blocks=1, downsample="muzero"),
      policy="gumbel", discount=discount, support_size=support_size,
      optimizer=muax.model.optimizer(init_value=0., peak_value=3e-3, end_value=3e-4,
                                     warmup_steps=1000, transition_steps=50_000))
  result = muax.train.run(
      model, env=env, test_env=test_env, tracer=muax.PNStep(10, discount, 0.5),
      buffer=muax.TrajectoryReplayBuffer(None, random_seed=args.seed,
                                         max_bytes=int(args.replay_gb * 2 ** 30),
                                         obs_dtype=np.uint8),
      max_episodes=args.episodes, max_training_steps=args.steps,
      num_simulations=args.num_simulations, k_steps=5, buffer_warm_up=args.warm_up,
      num_trajectory=16, sample_per_trajectory=2, num_update_per_episode=10,
      test_interval=max(args.episodes // 5, 1), num_test_episodes=1,
      tensorboard_dir="runs/tensorboard/atari", model_save_path="runs/models/atari",
      random_seed=args.seed, progress=not args.no_progress)
  print(result.summary())


if __name__ == "__main__":
  main()
