"""Stochastic MuZero on a small stochastic game, trained with `muax.fit`.

`muax.stochastic.GambleEnv`: each round take a sure reward of 1, or gamble
for 0 and then name a fair coin for +2 (or -2 if wrong). Gambling and reacting
is worth twice the sure thing (8 over 4 rounds, against 4). The encoder learns
a chance code for each side of the coin and the search branches on it.
`benchmarks/stochastic.py` compares Stochastic and plain MuZero on it (at the
default budget plain MuZero does as well or better: see that file).

Run: python examples/stochastic.py   (about 40 seconds on a 2-core CPU)
"""
import jax

import muax
from muax import stochastic
from muax.test import test

num_rounds = 4
discount = 0.97

optimizer = muax.model.optimizer(init_value=0.005, peak_value=0.005, end_value=0.001,
                                 warmup_steps=0, transition_steps=2000)
# The six networks (representation, prediction, afterstate dynamics and
# prediction, chance dynamics, encoder) as MLPs; muax.MuZero(**networks,
# policy='stochastic') with stochastic.mlp_networks(...) does the same.
model = stochastic.build_model(2, embedding_dim=16, hidden=64, support_size=10,
                               discount=discount, optimizer=optimizer,
                               num_chance_outcomes=32)

model_path = muax.fit(model, env=stochastic.GambleEnv(num_rounds),
                      test_env=stochastic.GambleEnv(num_rounds),
                      tracer=muax.PNStep(10, discount, 0.5),
                      buffer=muax.TrajectoryReplayBuffer(400),
                      max_episodes=600, test_interval=100, num_test_episodes=10,
                      max_training_steps=100000, num_simulations=32, k_steps=5,
                      buffer_warm_up=16, num_trajectory=32, sample_per_trajectory=2,
                      num_update_per_episode=10, random_seed=0,
                      tensorboard_dir="runs/tensorboard/stochastic",
                      model_save_path="runs/models/stochastic")

model.load(model_path)
score = test(model, stochastic.GambleEnv(num_rounds), jax.random.PRNGKey(0),
             num_simulations=32, num_test_episodes=50, random_seed=1)
print(f"best checkpoint {model_path}: mean greedy return {score:.2f} over 50 episodes "
      f"(always the sure reward: {num_rounds}, gamble and react: {2 * num_rounds})")
