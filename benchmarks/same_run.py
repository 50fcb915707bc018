"""Is a refactored muax the same learner? Short `fit` runs, fingerprinted.

For each option (muzero with reanalysis, gumbel, value prefix, stochastic, two
vector environments, prioritized replay) trains a small CartPole model for a
few episodes with a fixed seed, then prints one JSON line: a hash of the
final parameters and the greedy decision and policy on a fixed observation.
A Sampled MuZero model adds its first decision from fixed weights. Run it
against two trees and compare the lines: equal hashes mean bit-equal runs.

Usage: PYTHONPATH=<tree> python benchmarks/same_run.py
"""
import hashlib
import json
import tempfile

import gymnasium as gym
import jax
import numpy as np

import muax
from muax import nn


def fingerprint(tree) -> str:
  digest = hashlib.sha256()
  for x in jax.tree_util.tree_leaves(tree):
    digest.update(np.asarray(x).tobytes())
  return digest.hexdigest()[:16]


def networks(num_actions=2):
  return (nn._init_representation_func(nn.Representation, 8),
          nn._init_prediction_func(nn.Prediction, num_actions, 21),
          nn._init_dynamic_func(nn.Dynamic, 8, num_actions, 21))


OPTIONS = {
    "muzero_reanalyze": (lambda: muax.MuZero(*networks(), policy="muzero"),
                         lambda: dict(reanalyze=muax.Reanalyze(num_simulations=3))),
    "gumbel": (lambda: muax.MuZero(*networks(), policy="gumbel"), dict),
    "value_prefix": (lambda: muax.MuZero(*networks(), value_prefix=True), dict),
    "stochastic": (lambda: muax.stochastic.build_model(2), dict),
    "two_envs": (lambda: muax.MuZero(*networks()),
                 lambda: dict(num_envs=2, vectorization="sync")),
    "prioritized": (lambda: muax.MuZero(*networks(), policy="gumbel"),
                    lambda: dict(buffer=muax.PrioritizedReplayBuffer(1000, random_seed=0))),
}


def main():
  obs = np.full(4, 0.1, np.float32)
  for name, (make, options) in OPTIONS.items():
    model = make()
    with tempfile.TemporaryDirectory() as workdir:
      result = muax.train.run(
          model, env_id="CartPole-v1", max_episodes=4, test_interval=4, num_test_episodes=1,
          num_simulations=4, k_steps=3, buffer_warm_up=2, num_trajectory=4,
          sample_per_trajectory=2, num_update_per_episode=3, progress=False, random_seed=0,
          tensorboard_dir=f"{workdir}/tb", model_save_path=f"{workdir}/m",
          checkpoint_interval=0, **options())
    action, pi = model.act(jax.random.PRNGKey(3), obs, with_pi=True, num_simulations=8)
    print(json.dumps({"bench": "same_run", "option": name, "params": fingerprint(model.params),
                      "env_steps": result.env_steps, "updates": result.training_steps,
                      "action": int(action), "pi": np.round(pi, 6).tolist()}), flush=True)
  box = gym.spaces.Box(-2., 2., (1,), np.float32)
  model = muax.sampled.build_model(box, embedding_dim=8, hidden=(16,), num_samples=4)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 3), np.float32))
  action, pi, value = model.act(jax.random.PRNGKey(1), np.ones(3, np.float32), with_pi=True,
                                with_value=True, num_simulations=4)
  print(json.dumps({"bench": "same_run", "option": "sampled_act",
                    "action": np.round(action, 6).tolist(), "pi": np.round(pi, 6).tolist(),
                    "value": round(float(value), 6)}), flush=True)


if __name__ == "__main__":
  main()
