"""Sampled MuZero on Pendulum-v1 (a continuous action in [-2, 2]) with `muax.fit`.

The model searches over 16 torques sampled from its Gaussian policy at every
node (`muax.sampled`), and learns the policy from the search's weights over
those samples.

Run: python examples/pendulum.py   (a few minutes on a 2-core CPU)
Watch: tensorboard --logdir runs/tensorboard/pendulum
"""
import argparse

import gymnasium as gym
import jax

import muax
from muax import sampled
from muax.test import test


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--max-episodes", type=int, default=200)
  parser.add_argument("--max-training-steps", type=int, default=20_000)
  parser.add_argument("--num-simulations", type=int, default=16)
  parser.add_argument("--buffer-warm-up", type=int, default=2)
  parser.add_argument("--test-interval", type=int, default=10)
  parser.add_argument("--num-test-episodes", type=int, default=10)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args()

  env = gym.make("Pendulum-v1")
  discount = 0.99
  model = sampled.build_model(
      env.action_space, embedding_dim=64, hidden=(64,), support_size=30,
      discount=discount, num_samples=16,
      optimizer=muax.model.optimizer(init_value=0., peak_value=3e-3, end_value=3e-4,
                                     warmup_steps=100, transition_steps=2000))
  result = muax.train.run(
      model, env_id="Pendulum-v1", tracer=muax.PNStep(10, discount, 0.5),
      buffer=muax.TrajectoryReplayBuffer(200, random_seed=args.seed),
      max_episodes=args.max_episodes,
      max_training_steps=args.max_training_steps, num_simulations=args.num_simulations,
      k_steps=5, buffer_warm_up=args.buffer_warm_up, num_trajectory=16,
      sample_per_trajectory=8, num_update_per_episode=100,
      test_interval=args.test_interval, num_test_episodes=args.num_test_episodes,
      temperature_fn=lambda **_: 1., target_return=-200.,
      tensorboard_dir="runs/tensorboard/pendulum", model_save_path="runs/models/pendulum",
      random_seed=args.seed, progress=not args.no_progress)
  print(result.summary())

  # The best checkpoint in a fresh model, tested on more episodes.
  best = sampled.build_model(env.action_space, embedding_dim=64, hidden=(64,),
                             support_size=30, discount=discount, num_samples=16)
  best.load(result.best_path)
  score = test(best, env, jax.random.PRNGKey(1), num_simulations=args.num_simulations,
               num_test_episodes=args.num_test_episodes, random_seed=args.seed + 1)
  print(f"best checkpoint: mean greedy return over {args.num_test_episodes} episodes "
        f"{score:.1f}")


if __name__ == "__main__":
  main()
