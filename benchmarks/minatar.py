"""MuZero on MinAtar Breakout for a fixed budget of environment steps.

Run: python benchmarks/minatar.py --env-steps 100000 [--seed 0] [--game breakout]

Trains with `muax.train.run` in chunks of `--test-interval` episodes (each
chunk resumes the previous one from its run state, so the chunks make one
deterministic run), and after each chunk's greedy test prints a JSON line

  {"env_steps": ..., "episodes": ..., "updates": ..., "seconds": ..., "test_return": ...}

then a final summary line (`"summary": true`). Every random source is seeded
from `--seed`: the model's keys and episode seeds (`fit`'s `random_seed`), the
replay buffer's sampling (`random_seed`), the environments (`reset(seed=)`)
and the random-policy baseline.

The environment is MinAtar as in its paper: all 6 actions, sticky actions
with probability 0.1, difficulty ramping; one environment step is one frame
(MinAtar has no frame skip).

Reference figures printed for comparison:

* Random policy: measured here on the same environment (1,000 episodes); the
  MinAtar README reports an average return of 0.5 for `random_play.py` on
  Breakout.
* DQN: Young & Tian (2019), "MinAtar: An Atari-Inspired Testbed for Thorough
  and Reproducible Reinforcement Learning Experiments", arXiv:1903.03176,
  train DQN (a smaller network than Mnih et al., with experience replay and a
  target network) for 5,000,000 frames and report the average return as
  learning curves over 30 seeds. The paper gives these curves as a figure,
  not a table, and this script does not transcribe a number from it (none
  could be checked here); pass `--dqn-reference RETURN` with the value read
  from the paper's figure to have the summary compare against it. Note the
  frame budgets differ: a CPU run here sees a few percent of DQN's 5M frames.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

# This file is named minatar.py: keep `import minatar` from finding it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import muax  # noqa: E402
from muax import envs  # noqa: E402
from muax import nn  # noqa: E402

DQN_FRAMES = 5_000_000
README_RANDOM_RETURN = {"breakout": 0.5}


def build_model(num_actions, args):
  return muax.MuZero(
      *nn.resnet_networks(num_actions, args.support_size, channels=args.channels,
                          num_blocks=args.blocks, downsample=1,
                          prediction_blocks=args.prediction_blocks,
                          dynamic_blocks=args.dynamic_blocks, head_hidden=(args.head,)),
      policy=args.policy, discount=args.discount, support_size=args.support_size,
      optimizer=muax.model.optimizer(init_value=0., peak_value=args.lr,
                                     end_value=args.lr / 10, warmup_steps=500,
                                     transition_steps=args.lr_decay_steps))


def random_return(game, seed, episodes=1000):
  """Mean return of uniformly random actions on the benchmark's environment."""
  env = envs.make_minatar(game)
  rng = np.random.default_rng(seed)
  env.reset(seed=seed)
  total = 0.
  for _ in range(episodes):
    env.reset()
    done = False
    while not done:
      _, r, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
      total += r
      done = terminated or truncated
  return total / episodes


def train(args, out=sys.stdout):
  """Runs the benchmark; prints JSON lines to `out` and returns the records."""
  env = envs.make_minatar(args.game, max_episode_steps=args.max_episode_steps)
  test_env = envs.make_minatar(args.game, max_episode_steps=args.max_episode_steps)
  model = build_model(env.action_space.n, args)
  buffer = muax.TrajectoryReplayBuffer(
      args.buffer_episodes, random_seed=args.seed, max_transitions=args.buffer_steps,
      obs_dtype=np.uint8)
  tracer = muax.PNStep(args.n_step, args.discount, 0.5)
  workdir = args.workdir or tempfile.mkdtemp(prefix="muax-minatar-")
  start, records, chunk = time.perf_counter(), [], 0
  result = None
  while result is None or result.env_steps < args.env_steps:
    chunk += 1
    result = muax.train.run(
        model, env=env, test_env=test_env, tracer=tracer, buffer=buffer,
        max_episodes=chunk * args.test_interval, test_interval=args.test_interval,
        num_test_episodes=args.test_episodes, max_training_steps=10 ** 9,
        num_simulations=args.num_simulations, k_steps=args.k_steps,
        buffer_warm_up=args.warm_up, num_trajectory=args.num_trajectory,
        sample_per_trajectory=args.sample_per_trajectory,
        num_update_per_episode=args.updates_per_episode, name="minatar",
        tensorboard_dir=os.path.join(workdir, "tb"),
        model_save_path=os.path.join(workdir, "models"), random_seed=args.seed,
        temperature_fn=_temperature(args.env_steps, lambda: env_steps_now(result)),
        progress=False, resume=chunk > 1, checkpoint_interval=1e9, keep_checkpoints=1)
    for test in result.tests[len(records):]:
      record = dict(env_steps=test.env_steps, episodes=test.episode,
                    updates=test.training_steps, seconds=round(time.perf_counter() - start, 1),
                    test_return=test.test_return)
      records.append(record)
      print(json.dumps(record), file=out, flush=True)
  return records, result


def env_steps_now(result):
  return 0 if result is None else result.env_steps


def _temperature(budget, steps_fn):
  """Visit-count temperature 1 for the first half of the step budget, 0.5 to
  three quarters, then 0.25 (`fit`'s default schedule, by env steps)."""
  def fn(max_training_steps, training_steps):
    done = steps_fn() / budget
    return 1. if done < 0.5 else 0.5 if done < 0.75 else 0.25
  return fn


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--env-steps", type=int, default=15_000,
                      help="environment steps (frames) to train for")
  parser.add_argument("--game", default="breakout", choices=envs.MINATAR_GAMES)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--policy", default="gumbel", choices=("muzero", "gumbel"))
  parser.add_argument("--num-simulations", type=int, default=16)
  parser.add_argument("--channels", type=int, default=16)
  parser.add_argument("--blocks", type=int, default=1, help="representation blocks")
  parser.add_argument("--prediction-blocks", type=int, default=0)
  parser.add_argument("--dynamic-blocks", type=int, default=1)
  parser.add_argument("--head", type=int, default=64)
  parser.add_argument("--support-size", type=int, default=10)
  parser.add_argument("--discount", type=float, default=0.99)
  parser.add_argument("--n-step", type=int, default=10)
  parser.add_argument("--k-steps", type=int, default=5)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--lr-decay-steps", type=int, default=5_000)
  parser.add_argument("--warm-up", type=int, default=20, help="episodes before learning")
  parser.add_argument("--updates-per-episode", type=int, default=3)
  parser.add_argument("--num-trajectory", type=int, default=16)
  parser.add_argument("--sample-per-trajectory", type=int, default=2)
  parser.add_argument("--buffer-episodes", type=int, default=5000)
  parser.add_argument("--buffer-steps", type=int, default=100_000)
  parser.add_argument("--test-interval", type=int, default=50,
                      help="training episodes between greedy tests")
  parser.add_argument("--test-episodes", type=int, default=10)
  parser.add_argument("--max-episode-steps", type=int, default=5000)
  parser.add_argument("--dqn-reference", type=float, default=None,
                      help="DQN's return read from the MinAtar paper's figure, to compare")
  parser.add_argument("--workdir", default=None, help="checkpoints and logs (default: temp)")
  args = parser.parse_args(argv)

  baseline = random_return(args.game, args.seed)
  print(json.dumps({"reference": "random policy (measured here, 1000 episodes)",
                    "return": round(baseline, 3),
                    "minatar_readme": README_RANDOM_RETURN.get(args.game)}), flush=True)
  print(json.dumps({"reference": "DQN, Young & Tian 2019 (arXiv:1903.03176)",
                    "frames": DQN_FRAMES, "return": args.dqn_reference,
                    "note": "learning curves over 30 seeds in the paper's figure; no "
                            "number transcribed here unless given with --dqn-reference"}),
        flush=True)
  records, result = train(args)
  best = max(records, key=lambda r: r["test_return"])
  summary = dict(summary=True, game=args.game, seed=args.seed, env_steps=result.env_steps,
                 episodes=result.episodes, updates=result.training_steps,
                 seconds=records[-1]["seconds"], final_test_return=records[-1]["test_return"],
                 best_test_return=best["test_return"], best_at_env_steps=best["env_steps"],
                 random_return=round(baseline, 3), dqn_frames=DQN_FRAMES,
                 dqn_return=args.dqn_reference)
  if args.dqn_reference:
    summary["final_over_dqn"] = round(records[-1]["test_return"] / args.dqn_reference, 3)
  print(json.dumps(summary), flush=True)


if __name__ == "__main__":
  main()
