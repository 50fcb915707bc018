"""Train MuZero with a hand-written loop, then play greedily with a reloaded model.

Shows the pieces `muax.fit` is made of: `model.act` in a gymnasium loop, an
n-step tracer filling a `Trajectory`, the replay buffer, and `model.update`.

Run: python examples/custom_loop.py [--episodes 150]
"""
import argparse
import os
import tempfile

import gymnasium as gym
import jax
import numpy as np

import muax
from muax import nn


def make_model(num_actions, support_size=10, embedding_size=8, discount=0.99):
  full_support_size = 2 * support_size + 1
  return muax.MuZero(
      nn._init_representation_func(nn.Representation, embedding_size),
      nn._init_prediction_func(nn.Prediction, num_actions, full_support_size),
      nn._init_dynamic_func(nn.Dynamic, embedding_size, num_actions, full_support_size),
      policy='muzero', discount=discount, support_size=support_size,
      optimizer=muax.model.optimizer(init_value=0.02, peak_value=0.02, end_value=0.002,
                                     warmup_steps=5000, transition_steps=5000))


def collect(model, env, tracer, key, seed, temperature, num_simulations):
  """One episode with `model.act`, recorded as a Trajectory."""
  obs, info = env.reset(seed=seed)
  tracer.reset()
  trajectory = muax.Trajectory()
  episode_return = 0.
  while True:
    key, subkey = jax.random.split(key)
    a, pi, v = model.act(subkey, obs, with_pi=True, with_value=True,
                         num_simulations=num_simulations, temperature=temperature)
    obs_next, r, terminated, truncated, info = env.step(a)
    episode_return += r
    bootstrap = None
    if truncated and not terminated:  # a time limit: the future still has value
      key, subkey = jax.random.split(key)
      _, bootstrap = model.act(subkey, obs_next, with_value=True,
                               num_simulations=num_simulations, temperature=0.)
    tracer.add(obs, a, r, terminated, v=v, pi=pi, truncated=truncated and not terminated,
               bootstrap_value=bootstrap)
    while tracer:
      trajectory.add(tracer.pop())
    if terminated or truncated:
      break
    obs = obs_next
  trajectory.finalize()
  return trajectory, episode_return


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--episodes", type=int, default=150)
  parser.add_argument("--warm-up", type=int, default=32)
  parser.add_argument("--updates-per-episode", type=int, default=50)
  parser.add_argument("--num-simulations", type=int, default=50)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  env = gym.make('CartPole-v1')
  model = make_model(env.action_space.n)
  key = jax.random.PRNGKey(args.seed)
  obs, _ = env.reset(seed=args.seed)
  model.init(key, obs[None])

  tracer = muax.PNStep(10, 0.99, 0.5)
  buffer = muax.TrajectoryReplayBuffer(500, random_seed=args.seed)
  seeds = np.random.default_rng(args.seed)
  for episode in range(args.warm_up + args.episodes):
    key, subkey = jax.random.split(key)
    temperature = 1. if episode < args.warm_up + args.episodes // 2 else 0.5
    trajectory, ret = collect(model, env, tracer, subkey, int(seeds.integers(2**31)),
                              temperature, args.num_simulations)
    buffer.add(trajectory, trajectory.batched_transitions.w.mean())
    if episode < args.warm_up:
      continue
    for _ in range(args.updates_per_episode):
      batch = buffer.sample(num_trajectory=32, sample_per_trajectory=1, k_steps=10)
      metrics = model.update(batch)
    if episode % 10 == 0:
      print(f"episode {episode}: return {ret:.0f}, loss {metrics['loss']:.3f}")

  # Save, reload into a fresh model, and play greedily.
  path = os.path.join(tempfile.mkdtemp(), 'cartpole_params')
  model.save(path)
  fresh = make_model(env.action_space.n)
  fresh.load(path)
  returns = []
  for episode in range(5):
    obs, _ = env.reset(seed=10_000 + episode)
    total, done = 0., False
    while not done:
      key, subkey = jax.random.split(key)
      a = fresh.act(subkey, obs, num_simulations=args.num_simulations, temperature=0.)
      obs, r, terminated, truncated, _ = env.step(a)
      total += r
      done = terminated or truncated
    returns.append(total)
  print(f"greedy returns of the reloaded model: {returns} (mean {np.mean(returns):.1f})")


if __name__ == '__main__':
  main()
