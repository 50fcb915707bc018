"""Stochastic MuZero on a small game of chance, trained with `muax.fit`.

`muax.stochastic.CoinBetsEnv`: each round pick one of two bets on a fair
coin, see the coin, then act on it. Naming the coin pays 4 (-12 if wrong);
the long shot pays 8 if you cash out on heads, and costs 6 if you fold on
tails (10 if you cash out). Reacting to the coin, naming it is worth 4 a
round and the long shot 1 (16 against 4 over 4 rounds). The encoder learns a
chance code for each side of the coin and the search weighs them by their
probability. Plain MuZero's deterministic model rates the long shot at 8 in
hindsight (it only ever cashed out on heads) and tends to stay on it:
`benchmarks/stochastic.py` compares the two.

Half of the training episodes start mid-round after a random bet, so that
the reactions to both bets are learned; the tests start at the beginning.

Run: python examples/stochastic.py   (about a minute on a 2-core CPU)
"""
import jax

import muax
from muax import stochastic
from muax.test import test

num_rounds = 4
discount = 0.97
max_episodes = 600

optimizer = muax.model.optimizer(init_value=0.005, peak_value=0.005, end_value=0.001,
                                 warmup_steps=0, transition_steps=2000)
# The six networks (representation, prediction, afterstate dynamics and
# prediction, chance dynamics, encoder) as MLPs; muax.MuZero(**networks,
# policy='stochastic') with stochastic.mlp_networks(...) does the same.
model = stochastic.build_model(2, embedding_dim=16, hidden=64, support_size=10,
                               discount=discount, optimizer=optimizer,
                               num_chance_outcomes=32)

# max_training_steps is the whole budget (10 updates an episode), so the
# default temperature schedule anneals acting from 1 to 0.25.
model_path = muax.fit(model, env=stochastic.CoinBetsEnv(num_rounds, mid_round_starts=0.5),
                      test_env=stochastic.CoinBetsEnv(num_rounds),
                      tracer=muax.PNStep(10, discount, 0.5),
                      buffer=muax.TrajectoryReplayBuffer(400, random_seed=0),
                      max_episodes=max_episodes, test_interval=200, num_test_episodes=10,
                      max_training_steps=10 * max_episodes, num_simulations=64, k_steps=5,
                      buffer_warm_up=16, num_trajectory=32, sample_per_trajectory=2,
                      num_update_per_episode=10, random_seed=0,
                      tensorboard_dir="runs/tensorboard/stochastic",
                      model_save_path="runs/models/stochastic")

model.load(model_path)
score = test(model, stochastic.CoinBetsEnv(num_rounds), jax.random.PRNGKey(0),
             num_simulations=64, num_test_episodes=50, random_seed=1)
print(f"best checkpoint {model_path}: mean greedy return {score:.2f} over 50 episodes "
      f"(always name the coin: {4 * num_rounds}, always the long shot: {num_rounds})")
