"""Tic-tac-toe by self-play: a two-player MuZero on PettingZoo's tictactoe_v3.

One model plays both sides (`two_player=True`: values are from the view of
the player to move and the search flips them every ply); the environment is
PettingZoo's game seen by the player to move (`muax.games.PettingZooEnv`),
with its legal-action masks; the greedy tests play a random opponent from
each side in turn. Needs `pip install 'muax[games]'`.

  python examples/tictactoe.py                # about 10 minutes on 2 cores
  python examples/tictactoe.py --episodes 300 # a quick look
"""
import argparse

import jax
import numpy as np

import muax
from muax import games, nn


def make_model(policy: str = "gumbel", support_size: int = 2, embedding_dim: int = 32,
               hidden=(128,)):
  """A two-player MuZero with MLP networks for a 3x3x2 board."""
  size = 2 * support_size + 1
  num_actions = 9
  return muax.MuZero(
      nn._init_representation_func(nn.Representation, embedding_dim, hidden=hidden),
      nn._init_prediction_func(nn.Prediction, num_actions, size, hidden=hidden),
      nn._init_dynamic_func(nn.Dynamic, embedding_dim, num_actions, size, hidden=hidden),
      policy=policy, discount=1., support_size=support_size, two_player=True,
      optimizer=muax.model.optimizer(init_value=3e-3, peak_value=3e-3, end_value=3e-4,
                                     warmup_steps=0, transition_steps=5_000))


def train(episodes: int = 3000, seed: int = 0, num_simulations: int = 25,
          save_dir: str = "runs/models/tictactoe", logdir: str = "runs/tensorboard",
          progress: bool = True, resume: bool = False, policy: str = "gumbel",
          openings: int = 3):
  """Self-play training; returns `(model, FitResult)`."""
  model = make_model(policy)
  result = muax.train.run(
      # Self-play games start after 0-3 random moves, for positions its own
      # openings never reach.
      model, env=games.RandomOpenings(games.PettingZooEnv("tictactoe_v3"), openings, seed),
      test_env=games.PettingZooEnv("tictactoe_v3"),
      opponent=games.RandomOpponent(seed),
      tracer=muax.PNStep(9, 1., 0.5, two_player=True),  # whole-game returns
      buffer=muax.TrajectoryReplayBuffer(3000, random_seed=seed),
      max_episodes=episodes, max_training_steps=episodes * 10, num_simulations=num_simulations,
      k_steps=5, buffer_warm_up=100, num_trajectory=64, sample_per_trajectory=2,
      num_update_per_episode=10, test_interval=max(1, episodes // 10),
      num_test_episodes=20, random_seed=seed, name=f"tictactoe_seed{seed}",
      tensorboard_dir=logdir, model_save_path=save_dir, progress=progress, resume=resume)
  model.load(result.best_path)
  return model, result


def score_against(model, opponent, games_per_side: int = 50, num_simulations: int = 25,
                  seed: int = 0):
  """`(wins, draws, losses)` of the model's greedy play against `opponent`."""
  env = games.VersusOpponent(games.PettingZooEnv("tictactoe_v3"), opponent)
  muax.test.test(model, env, jax.random.PRNGKey(seed), num_simulations,
                 num_test_episodes=2 * games_per_side, random_seed=seed)
  outcomes = np.sign(env.outcomes)
  return int((outcomes > 0).sum()), int((outcomes == 0).sum()), int((outcomes < 0).sum())


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--episodes", type=int, default=15000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--resume", action="store_true")
  args = parser.parse_args()
  model, result = train(args.episodes, args.seed, resume=args.resume)
  print(result.summary())
  wins, draws, losses = score_against(model, games.RandomOpponent(args.seed + 1))
  print(f"against a random player, 50 games as each side: {wins} wins, {draws} draws, "
        f"{losses} losses")


if __name__ == "__main__":
  main()
