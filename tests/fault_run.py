"""A small `fit` run for the fault tests, run as a subprocess.

python tests/fault_run.py SAVE_DIR [--resume] [--episodes N] [--num-envs N]
                          [--vectorization sync|async]

Trains CartPole-v1 with a tiny model and a fixed seed, writing a run state
after every episode; at the end saves the final parameters to
SAVE_DIR/final.npz and prints DONE.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import muax  # noqa: E402
from conftest import make_mlp_model  # noqa: E402


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("save_dir")
  parser.add_argument("--resume", action="store_true")
  parser.add_argument("--episodes", type=int, default=24)
  parser.add_argument("--num-envs", type=int, default=1)
  parser.add_argument("--vectorization", default="sync")
  args = parser.parse_args()
  model = make_mlp_model(init=False)
  muax.fit(model, env_id="CartPole-v1", max_episodes=args.episodes, test_interval=8,
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
