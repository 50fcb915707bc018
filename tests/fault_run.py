"""A small `fit` run for the fault tests, run as a subprocess.

python tests/fault_run.py SAVE_DIR [--resume] [--episodes N] [--num-envs N]
                          [--vectorization sync|async] [--hang-after N]

Trains CartPole-v1 with a tiny model and a fixed seed, writing a run state
after every episode; at the end saves the final parameters to
SAVE_DIR/final.npz and prints DONE. With --hang-after N, each training
environment hangs in its N-th step (after writing SAVE_DIR/hung).
"""
import argparse
import functools
import os
import sys
import time

import gymnasium as gym

sys.path.insert(0, os.path.dirname(__file__))

import muax  # noqa: E402
from conftest import make_mlp_model  # noqa: E402


class Hanging(gym.Wrapper):
  """CartPole whose N-th step never returns (a simulator that hung)."""

  def __init__(self, marker, after):
    super().__init__(gym.make("CartPole-v1"))
    self.marker, self.after, self.steps = marker, after, 0

  def step(self, action):
    self.steps += 1
    if self.steps == self.after:
      with open(self.marker, "w") as f:
        f.write(str(os.getpid()))
      time.sleep(3600)
    return self.env.step(action)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("save_dir")
  parser.add_argument("--resume", action="store_true")
  parser.add_argument("--episodes", type=int, default=24)
  parser.add_argument("--num-envs", type=int, default=1)
  parser.add_argument("--vectorization", default="sync")
  parser.add_argument("--hang-after", type=int, default=0)
  args = parser.parse_args()
  model = make_mlp_model(init=False)
  envs = dict(env_id="CartPole-v1")
  if args.hang_after:
    envs = dict(env=functools.partial(Hanging, os.path.join(args.save_dir, "hung"),
                                      args.hang_after),
                test_env=gym.make("CartPole-v1"))
  muax.fit(model, **envs, max_episodes=args.episodes, test_interval=8,
           num_test_episodes=2, max_training_steps=10_000, num_simulations=4, k_steps=3,
           buffer_warm_up=3, num_trajectory=8, sample_per_trajectory=2,
           num_update_per_episode=4, random_seed=3, progress=False, name="fault",
           tensorboard_dir=os.path.join(args.save_dir, "tb"),
           model_save_path=os.path.join(args.save_dir, "models"),
           checkpoint_interval=0, keep_checkpoints=3, resume=args.resume,
           num_envs=args.num_envs, vectorization=args.vectorization,
           buffer=muax.TrajectoryReplayBuffer(50, random_seed=3))
  model.save(os.path.join(args.save_dir, "final"))
  print("DONE", flush=True)


if __name__ == "__main__":
  main()
