"""The README's CartPole script, configuration unchanged, over several seeds.

For each seed prints one JSON line: the best test return seen by `fit`, the
100-episode greedy test return of the checkpoint `fit` returned (what the
README does next), and env steps, updates and wall-clock to the first test
return >= 475. Usage: python benchmarks/cartpole_readme.py --seeds 0 1 2
"""
import argparse
import json
import tempfile
import time

import jax

import muax
from muax import nn
from muax.test import test


def readme_run(seed, workdir, progress):
  support_size = 10
  embedding_size = 8
  discount = 0.99
  num_actions = 2
  full_support_size = int(support_size * 2 + 1)
  repr_fn = nn._init_representation_func(nn.Representation, embedding_size)
  pred_fn = nn._init_prediction_func(nn.Prediction, num_actions, full_support_size)
  dy_fn = nn._init_dynamic_func(nn.Dynamic, embedding_size, num_actions, full_support_size)
  tracer = muax.PNStep(10, discount, 0.5)
  buffer = muax.TrajectoryReplayBuffer(500)
  gradient_transform = muax.model.optimizer(init_value=0.02, peak_value=0.02,
                                            end_value=0.002, warmup_steps=5000,
                                            transition_steps=5000)
  model = muax.MuZero(repr_fn, pred_fn, dy_fn, policy='muzero', discount=discount,
                      optimizer=gradient_transform, support_size=support_size)
  result = muax.train.run(model, env_id='CartPole-v1', max_episodes=1000,
                          max_training_steps=10000, tracer=tracer, buffer=buffer,
                          k_steps=10, sample_per_trajectory=1, num_trajectory=32,
                          tensorboard_dir=f'{workdir}/tensorboard/cartpole',
                          model_save_path=f'{workdir}/models/cartpole',
                          save_name='cartpole_model_params', random_seed=seed,
                          log_all_metrics=True, progress=progress)
  fresh = muax.MuZero(repr_fn, pred_fn, dy_fn, policy='muzero', discount=discount,
                      optimizer=gradient_transform, support_size=support_size)
  fresh.load(result.best_path)
  import gymnasium as gym
  final = test(fresh, gym.make('CartPole-v1'), jax.random.PRNGKey(0), num_simulations=50,
               num_test_episodes=100, random_seed=seed)
  return result, final


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--progress", action="store_true")
  args = parser.parse_args()
  for seed in args.seeds:
    with tempfile.TemporaryDirectory() as workdir:
      start = time.perf_counter()
      result, final = readme_run(seed, workdir, args.progress)
      solved = result.first_reaching(475.)
      print(json.dumps({
          "bench": "cartpole_readme", "seed": seed,
          "best_fit_test_return": result.best_test_return,
          "final_test_return_100ep": final,
          "env_steps": result.env_steps, "updates": result.training_steps,
          "episodes": result.episodes, "wall_clock_s": round(time.perf_counter() - start, 1),
          "to_475": None if solved is None else {
              "env_steps": solved.env_steps, "updates": solved.training_steps,
              "wall_clock_s": round(solved.seconds, 1)},
          "tests": [round(t.test_return, 1) for t in result.tests]}), flush=True)


if __name__ == "__main__":
  main()
