"""MuZero on LunarLander-v3 (needs the box2d extra: pip install "muax[box2d]").

The configuration of `benchmarks/lunarlander.py` (Gumbel MuZero, 16 simulations,
about half an update per environment step), in one `muax.train.run` call: the
benchmark adapts the updates per episode to the episode length and stops on an
environment-step budget; here the updates per episode are fixed.

Run: python examples/lunarlander.py [--max-training-steps 150000]
Watch: tensorboard --logdir runs/tensorboard/lunarlander
"""
import argparse

import gymnasium as gym

import muax
from muax import nn


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--max-episodes", type=int, default=1500)
  parser.add_argument("--max-training-steps", type=int, default=150_000)
  parser.add_argument("--num-simulations", type=int, default=16)
  parser.add_argument("--updates-per-episode", type=int, default=150)
  parser.add_argument("--buffer-warm-up", type=int, default=10)
  parser.add_argument("--test-interval", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args()

  env = gym.make('LunarLander-v3')
  num_actions = env.action_space.n
  support_size, embedding_size, discount = 20, 64, 0.99
  full_support_size = 2 * support_size + 1
  hidden = (128,)
  model = muax.MuZero(
      nn._init_representation_func(nn.Representation, embedding_size, hidden=hidden),
      nn._init_prediction_func(nn.Prediction, num_actions, full_support_size, hidden=hidden),
      nn._init_dynamic_func(nn.Dynamic, embedding_size, num_actions, full_support_size,
                            hidden=hidden),
      policy='gumbel', discount=discount, support_size=support_size,
      optimizer=muax.model.optimizer(init_value=0., peak_value=3e-3, end_value=3e-4,
                                     warmup_steps=1000, transition_steps=20_000))
  result = muax.train.run(
      model, env_id='LunarLander-v3', tracer=muax.PNStep(10, discount, 0.5),
      buffer=muax.TrajectoryReplayBuffer(max_transitions=100_000, random_seed=args.seed),
      max_episodes=args.max_episodes, max_training_steps=args.max_training_steps,
      num_simulations=args.num_simulations, k_steps=5, buffer_warm_up=args.buffer_warm_up,
      num_trajectory=64, sample_per_trajectory=2,
      num_update_per_episode=args.updates_per_episode, test_interval=args.test_interval,
      num_test_episodes=5, tensorboard_dir='runs/tensorboard/lunarlander',
      model_save_path='runs/models/lunarlander', random_seed=args.seed,
      target_return=200., progress=not args.no_progress)
  print(result.summary())


if __name__ == '__main__':
  main()
