"""Stochastic MuZero against plain MuZero on `muax.stochastic.CoinBetsEnv`.

Each round the agent picks one of two bets on a fair coin, sees the coin, and
acts on it. Naming the coin pays 4 (-12 if wrong): worth 4 a round. The long
shot pays 8 for cashing out on heads and -6 for folding on tails (-10 for
cashing out): worth 1 a round. Plain MuZero's deterministic model, unrolled
along the actions taken, learns in hindsight that "long shot, cash out"
always pays 8 (the agent only cashes out on heads), and its search can stay
on the long shot; Stochastic MuZero's chance node weighs heads and tails by
half. Early on, when neither reacts to the coin yet, the long shot is the
better bet for both. Half of the training episodes start mid-round after a
random bet, so that the reactions to both bets are learned whatever the agent
bets on; the tests start at the beginning.

Both policies get the same network sizes, budget (episodes, updates,
simulations), settings and seeds; acting temperature anneals from 1 to 0.25
(`max_training_steps` is the whole budget). Each run ends with a greedy test
of the final model over `--final-test-episodes` episodes of 4 rounds. One
JSON line per run: `test_return` (16 = always name the coin, 4 = always the
long shot), `long_shot_rate` (the fraction of its bets that were the long
shot) and `start_value` (the search's discounted value of the first
observation; always naming the coin is worth 14.2). Then a summary line per
policy.

Measured (2-core CPU, default arguments: 600 episodes, seeds 0-2, replay
seeded with the run's seed):
  stochastic 16.0, 16.0, 16.0 (mean 16.0), long shot never taken;
  muzero     10.0, 4.48, 2.04 (mean 5.5), long-shot rates 0.5, 0.75, 1.0,
             start values 17.7 to 19.2 (above the 14.2 that any policy can reach:
             its model is biased by its own cash-outs).
With `--max-episodes 1000` both reach 16.0 on all three seeds: plain MuZero
escapes the trap with more training.

Run: python benchmarks/stochastic.py            (about 3 minutes on 2 cores)
     python benchmarks/stochastic.py --seeds 0 --max-episodes 200   (a quick look)
"""
import argparse
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import muax  # noqa: E402
from muax import nn  # noqa: E402
from muax import stochastic  # noqa: E402

NUM_ROUNDS = 4
DISCOUNT = 0.97
SETTINGS = dict(embedding_dim=16, hidden=64, support_size=10)


def make_model(policy: str, num_actions: int = 2, num_chance_outcomes: int = 32):
  """A Stochastic or plain MuZero with MLP networks of the same sizes."""
  optimizer = muax.model.optimizer(init_value=0.005, peak_value=0.005, end_value=0.001,
                                   warmup_steps=0, transition_steps=2000)
  if policy == "stochastic":
    return stochastic.build_model(num_actions, discount=DISCOUNT, optimizer=optimizer,
                                  num_chance_outcomes=num_chance_outcomes, **SETTINGS)
  size = 2 * SETTINGS["support_size"] + 1
  dim, hidden = SETTINGS["embedding_dim"], (SETTINGS["hidden"],)
  return muax.MuZero(
      nn._init_representation_func(nn.Representation, dim, hidden=hidden),
      nn._init_prediction_func(nn.Prediction, num_actions, size, hidden=hidden),
      nn._init_dynamic_func(nn.Dynamic, dim, num_actions, size, hidden=hidden),
      policy=policy, discount=DISCOUNT, optimizer=optimizer,
      support_size=SETTINGS["support_size"])


def greedy_test(model, seed: int, *, num_simulations: int, num_episodes: int) -> dict:
  """Mean return, long-shot rate and start value of greedy episodes."""
  env = stochastic.CoinBetsEnv(NUM_ROUNDS)
  key = jax.random.PRNGKey(seed)
  returns, bets = [], []
  obs, _ = env.reset(seed=1000 + seed)
  _, start_value = model.act(key, obs, with_value=True, num_simulations=num_simulations,
                             temperature=0.)
  for i in range(num_episodes):
    if i:
      obs, _ = env.reset()
    total, done = 0., False
    while not done:
      key, sub = jax.random.split(key)
      a = int(model.act(sub, obs, num_simulations=num_simulations, temperature=0.))
      if obs[0] == 1.:  # the choose phase: a is a bet
        bets.append(a)
      obs, r, done, _, _ = env.step(a)
      total += r
    returns.append(total)
  return {"test_return": round(float(np.mean(returns)), 3),
          "long_shot_rate": round(float(np.mean(bets)), 3),
          "start_value": round(float(start_value), 2)}


def train(policy: str, seed: int, *, max_episodes: int, num_simulations: int,
          final_test_episodes: int, mid_round_starts: float, save_dir: str) -> dict:
  """Trains one model with `muax.train.run`; returns the benchmark record."""
  model = make_model(policy)
  start = time.time()
  result = muax.train.run(
      model, env=stochastic.CoinBetsEnv(NUM_ROUNDS, mid_round_starts=mid_round_starts),
      test_env=stochastic.CoinBetsEnv(NUM_ROUNDS),
      tracer=muax.PNStep(10, DISCOUNT, 0.5),
      buffer=muax.TrajectoryReplayBuffer(400, random_seed=seed),
      max_episodes=max_episodes, test_interval=max_episodes, num_test_episodes=10,
      max_training_steps=10 * max_episodes, num_simulations=num_simulations, k_steps=5,
      buffer_warm_up=16, num_trajectory=32, sample_per_trajectory=2,
      num_update_per_episode=10, random_seed=seed, progress=False,
      tensorboard_dir=os.path.join(save_dir, "tb"),
      model_save_path=os.path.join(save_dir, f"{policy}_{seed}"),
      name=f"{policy}_{seed}")
  train_s = time.time() - start
  record = {"policy": policy, "seed": seed}
  record.update(greedy_test(model, seed, num_simulations=num_simulations,
                            num_episodes=final_test_episodes))
  record.update(env_steps=result.env_steps, training_steps=result.training_steps,
                train_s=round(train_s, 1))
  return record


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--policies", nargs="+", default=["stochastic", "muzero"])
  parser.add_argument("--max-episodes", type=int, default=600)
  parser.add_argument("--num-simulations", type=int, default=64)
  parser.add_argument("--final-test-episodes", type=int, default=50)
  parser.add_argument("--mid-round-starts", type=float, default=0.5)
  args = parser.parse_args(argv)
  records = []
  with tempfile.TemporaryDirectory() as save_dir:
    for seed in args.seeds:
      for policy in args.policies:
        record = train(policy, seed, max_episodes=args.max_episodes,
                       num_simulations=args.num_simulations,
                       final_test_episodes=args.final_test_episodes,
                       mid_round_starts=args.mid_round_starts, save_dir=save_dir)
        print(json.dumps(record), flush=True)
        records.append(record)
  for policy in args.policies:
    mine = [r for r in records if r["policy"] == policy]
    print(json.dumps({
        "summary": policy,
        "mean_test_return": round(float(np.mean([r["test_return"] for r in mine])), 3),
        "test_returns": [r["test_return"] for r in mine],
        "long_shot_rates": [r["long_shot_rate"] for r in mine],
        "start_values": [r["start_value"] for r in mine],
        "name_the_coin": 4. * NUM_ROUNDS, "long_shot": 1. * NUM_ROUNDS}), flush=True)


if __name__ == "__main__":
  main()
