"""The main job, `muax train CartPole-v1` with its defaults, over several seeds.

Prints one JSON line per seed: whether it was solved (a greedy test >= 475), env steps,
updates and wall-clock at that point. Usage: python benchmarks/cli_cartpole.py --seeds 0 1 2
"""
import argparse
import dataclasses
import json
import tempfile

from muax import cli


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--env-id", default="CartPole-v1")
  args = parser.parse_args()
  for seed in args.seeds:
    with tempfile.TemporaryDirectory() as workdir:
      config = dataclasses.replace(cli.TrainConfig(env_id=args.env_id), seed=seed,
                                   logdir=f"{workdir}/tb", save_dir=f"{workdir}/models",
                                   progress=False)
      result = cli.train(config)
      solved = result.first_reaching(475.)
      print(json.dumps({
          "bench": "cli_train", "env_id": args.env_id, "seed": seed,
          "solved": solved is not None, "best_test_return": result.best_test_return,
          "env_steps": solved.env_steps if solved else result.env_steps,
          "updates": solved.training_steps if solved else result.training_steps,
          "wall_clock_s": round(solved.seconds if solved else result.seconds, 1)}), flush=True)


if __name__ == "__main__":
  main()
