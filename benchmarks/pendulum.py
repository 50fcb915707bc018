"""Sampled MuZero on Pendulum-v1 until a greedy test averages > -200.

Trains `examples/pendulum.py`'s model (16 sampled torques per node, Gumbel
search, 16 simulations) with `muax.train.run`, testing greedily every
`--test-interval` episodes on `--num-test-episodes` episodes and stopping at
the first test above the goal. Then the best checkpoint is tested again on
`--final-test-episodes` fresh episodes. Prints one JSON line per test (the
learning curve) and a summary line. Usage:

  python benchmarks/pendulum.py                      # seed 0
  python benchmarks/pendulum.py --train-on --max-episodes 300   # no early stop

Measured (2-core CPU): seed 0 reached -136.2 at 42,400 env steps (20 fresh
episodes of that checkpoint: -268.0); seed 1 -185.5 at 22,400 (-282.1). With
--train-on --max-episodes 300, seed 0: best test -119.1 at 52,400 env steps,
-116.8 on 20 fresh episodes.
  python benchmarks/pendulum.py --seed 1 --max-episodes 400
"""
import argparse
import json
import tempfile
import time

import gymnasium as gym
import jax

import muax
from muax import sampled
from muax.test import test

GOAL = -200.


def build(env, args):
  return sampled.build_model(
      env.action_space, embedding_dim=64, hidden=(64,), support_size=30,
      discount=args.discount, num_samples=args.num_samples,
      optimizer=muax.model.optimizer(init_value=0., peak_value=args.lr, end_value=3e-4,
                                     warmup_steps=100, transition_steps=2000))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--max-episodes", type=int, default=300)
  parser.add_argument("--num-simulations", type=int, default=16)
  parser.add_argument("--num-samples", type=int, default=16)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--discount", type=float, default=0.99)
  parser.add_argument("--updates-per-episode", type=int, default=100)
  parser.add_argument("--test-interval", type=int, default=10)
  parser.add_argument("--num-test-episodes", type=int, default=10)
  parser.add_argument("--final-test-episodes", type=int, default=20)
  parser.add_argument("--train-on", action="store_true",
                      help="train for all --max-episodes instead of stopping at the goal")
  args = parser.parse_args()

  env = gym.make("Pendulum-v1")
  model = build(env, args)
  config = {k: getattr(args, k) for k in ("seed", "num_simulations", "num_samples", "lr",
                                          "discount", "updates_per_episode")}
  with tempfile.TemporaryDirectory() as workdir:
    result = muax.train.run(
        model, env_id="Pendulum-v1", tracer=muax.PNStep(10, args.discount, 0.5),
        buffer=muax.TrajectoryReplayBuffer(200, random_seed=args.seed),
        max_episodes=args.max_episodes,
        max_training_steps=args.max_episodes * args.updates_per_episode,
        num_simulations=args.num_simulations, k_steps=5, buffer_warm_up=2,
        num_trajectory=16, sample_per_trajectory=8,
        num_update_per_episode=args.updates_per_episode,
        test_interval=args.test_interval, num_test_episodes=args.num_test_episodes,
        temperature_fn=lambda **_: 1., target_return=None if args.train_on else GOAL,
        random_seed=args.seed,
        tensorboard_dir=f"{workdir}/tb", model_save_path=f"{workdir}/models",
        progress=False)
    for record in result.tests:
      print(json.dumps({"bench": "pendulum", "episode": record.episode,
                        "env_steps": record.env_steps,
                        "updates": record.training_steps,
                        "wall_clock_s": round(record.seconds, 1),
                        "test_return": round(record.test_return, 1)}), flush=True)
    best = build(env, args).load(result.best_path)
    start = time.perf_counter()
    final = test(best, env, jax.random.PRNGKey(args.seed + 1), args.num_simulations,
                 args.final_test_episodes, random_seed=10_000 + args.seed)
    final_seconds = time.perf_counter() - start
  reached = result.first_reaching(GOAL)
  print(json.dumps({
      "bench": "pendulum_summary", **config, "goal": GOAL, "reached": reached is not None,
      "env_steps": reached.env_steps if reached else None,
      "wall_clock_s": round(reached.seconds, 1) if reached else None,
      "updates": reached.training_steps if reached else None,
      "best_test_return": round(result.best_test_return, 1),
      "final_test_episodes": args.final_test_episodes,
      "final_greedy_return": round(final, 1), "final_test_s": round(final_seconds, 1),
      "run_env_steps": result.env_steps, "run_wall_clock_s": round(result.seconds, 1)}),
      flush=True)


if __name__ == "__main__":
  main()
