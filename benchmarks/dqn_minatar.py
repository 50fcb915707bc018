"""DQN on MinAtar at a fixed budget of environment steps: the baseline for minatar.py.

Run: python benchmarks/dqn_minatar.py --env-steps 15000 [--seed 0] [--game breakout]

A compact DQN (Mnih et al., 2015) with the network of the MinAtar paper (Young &
Tian, 2019, arXiv:1903.03176): one 3x3 convolution with 16 channels, stride 1 and
no padding, ReLU, flatten, dense 128, ReLU, a linear layer to one Q value per
action; observations are scaled from {0, 255} to {0, 1}. The environment is
exactly the one `benchmarks/minatar.py` trains MuZero on: `envs.make_minatar(
game, max_episode_steps=5000)`, i.e. all 6 actions, sticky actions with
probability 0.1, difficulty ramping, one environment step = one frame. So the
two scripts compare at the same env-step budget on the same machine.

Algorithm: epsilon-greedy acting, a numpy ring replay buffer, one jitted update
(Huber loss on the one-step TD error against a target network, max over the
target network's Q values) per environment step once the buffer holds
`--replay-start` transitions, the target network copied every
`--target-update` updates. Terminal transitions do not bootstrap; episodes cut
by the 5000-step limit do (the limit is not part of the game).

Defaults, and how they differ from the MinAtar paper's DQN (5M frames):

* optimizer Adam, learning rate 1e-3 (eps 1e-8). The paper uses centred
  RMSProp (lr 2.5e-4, squared-gradient decay 0.95, eps 0.01), tuned for 5M
  frames; at budgets of 15k-100k frames the faster Adam setting is the fairer
  baseline. `--optimizer rmsprop --lr 2.5e-4` gives the paper's setting.
* epsilon 1.0 -> 0.1 linearly over the first `--epsilon-fraction` = 10% of the
  budget (paper: over the first 100k frames, 2% of 5M), then 0.1.
* replay start 1000 transitions (paper: 5000), scaled down for short budgets;
  replay capacity 100k, batch 32, target update every 1000 updates, discount
  0.99, one update per environment step: as in the paper.
* greedy tests (`--test-epsilon` 0, like MuZero's greedy test in minatar.py;
  sticky actions already make them stochastic) of `--test-episodes` 10
  episodes every `--test-interval` environment steps and at the end, on a
  separate environment.

Prints one JSON line per test

  {"bench": "dqn_minatar", "env_steps": ..., "test_return": ..., "seconds": ...,
   "episodes": ..., "updates": ..., "epsilon": ...}

and a final summary line (`"summary": true`) with the best and final test
returns and the environment settings. Every random source is seeded from
`--seed`: the network's initialisation, the exploration, the replay sampling,
the training environment and the test environment.
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from typing import NamedTuple

import numpy as np

# benchmarks/minatar.py sits in this folder: keep `import minatar` from finding it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import haiku as hk  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from muax import envs  # noqa: E402

# The environment settings of benchmarks/minatar.py (its --max-episode-steps
# default; make_minatar's defaults for the rest).
MAX_EPISODE_STEPS = 5000
STICKY_ACTION_PROB = 0.1
DIFFICULTY_RAMPING = True


@dataclasses.dataclass(frozen=True)
class Config:
  """DQN settings; the command line is generated from these fields."""
  game: str = "breakout"
  env_steps: int = 15_000
  seed: int = 0
  test_interval: int = 1000  # environment steps between greedy tests
  test_episodes: int = 10
  test_epsilon: float = 0.0
  optimizer: str = "adam"  # or "rmsprop" (centred, as in the MinAtar paper)
  lr: float = 1e-3
  batch_size: int = 32
  buffer_size: int = 100_000
  replay_start: int = 1000
  target_update: int = 1000  # updates between target-network copies
  discount: float = 0.99
  epsilon_start: float = 1.0
  epsilon_end: float = 0.1
  epsilon_fraction: float = 0.1  # of env_steps over which epsilon decays

  def __post_init__(self):
    for name in ("env_steps", "test_interval", "test_episodes", "batch_size",
                 "buffer_size", "target_update"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
    if self.replay_start < self.batch_size:
      raise ValueError(f"replay_start must be at least batch_size={self.batch_size}, "
                       f"got replay_start={self.replay_start!r}")
    if self.optimizer not in ("adam", "rmsprop"):
      raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}")
    if self.game not in envs.MINATAR_GAMES:
      raise ValueError(f"game must be one of {envs.MINATAR_GAMES}, got {self.game!r}")


class Batch(NamedTuple):
  obs_tm1: jnp.ndarray  # [B, 10, 10, C] uint8
  a_tm1: jnp.ndarray  # [B] int32
  r_t: jnp.ndarray  # [B] float32
  done_t: jnp.ndarray  # [B] float32, 1 where the episode terminated (no bootstrap)
  obs_t: jnp.ndarray  # [B, 10, 10, C] uint8


def q_network(num_actions: int) -> hk.Transformed:
  """The MinAtar paper's Q network: `[B, 10, 10, C]` uint8 -> `[B, num_actions]`."""
  def forward(obs):
    x = obs.astype(jnp.float32) / 255.
    x = jax.nn.relu(hk.Conv2D(16, 3, stride=1, padding="VALID")(x))
    x = jax.nn.relu(hk.Linear(128)(hk.Flatten()(x)))
    return hk.Linear(num_actions)(x)
  return hk.without_apply_rng(hk.transform(forward))


def td_error(q_tm1, a_tm1, r_t, discount_t, q_t):
  """One example's Q-learning TD error `r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]`.

  Args:
    q_tm1: `[num_actions]` online Q values at the state acted in.
    a_tm1: `[]` the action taken.
    r_t: `[]` the reward.
    discount_t: `[]` the discount, 0 at a terminal transition.
    q_t: `[num_actions]` target-network Q values at the next state.

  Returns:
    `[]` the TD error, with no gradient through the target.
  """
  target = jax.lax.stop_gradient(r_t + discount_t * jnp.max(q_t))
  return target - q_tm1[a_tm1]


def huber(x, delta: float = 1.0):
  """Huber loss: `x**2 / 2` for `|x| <= delta`, `delta * (|x| - delta / 2)` beyond."""
  abs_x = jnp.abs(x)
  quadratic = jnp.minimum(abs_x, delta)
  return 0.5 * quadratic ** 2 + delta * (abs_x - quadratic)


def batch_loss(q_tm1, a_tm1, r_t, done_t, q_t, discount: float):
  """Mean Huber TD loss of a batch (`[B, A]`, `[B]`, `[B]`, `[B]`, `[B, A]`)."""
  errors = jax.vmap(td_error)(q_tm1, a_tm1, r_t, discount * (1. - done_t), q_t)
  return jnp.mean(huber(errors))


def make_optimizer(config: Config) -> optax.GradientTransformation:
  if config.optimizer == "adam":
    return optax.adam(config.lr)
  # PyTorch-style eps outside the square root, as in the MinAtar code.
  return optax.rmsprop(config.lr, decay=0.95, eps=0.01, eps_in_sqrt=False, centered=True)


def make_update(network: hk.Transformed, optimizer: optax.GradientTransformation,
                discount: float):
  """The jitted DQN step `(params, target_params, opt_state, batch) ->
  (params, opt_state, loss)`: one optimizer step on `batch_loss`."""
  def loss_fn(params, target_params, batch):
    q_tm1 = network.apply(params, batch.obs_tm1)
    q_t = network.apply(target_params, batch.obs_t)
    return batch_loss(q_tm1, batch.a_tm1, batch.r_t, batch.done_t, q_t, discount)

  @jax.jit
  def update(params, target_params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, target_params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss
  return update


class ReplayBuffer:
  """A numpy ring buffer of transitions, sampled uniformly with replacement."""

  def __init__(self, capacity: int, obs_shape, rng: np.random.Generator):
    self.obs_tm1 = np.zeros((capacity, *obs_shape), np.uint8)
    self.obs_t = np.zeros((capacity, *obs_shape), np.uint8)
    self.a_tm1 = np.zeros(capacity, np.int32)
    self.r_t = np.zeros(capacity, np.float32)
    self.done_t = np.zeros(capacity, np.float32)
    self.capacity, self.size, self._next, self._rng = capacity, 0, 0, rng

  def add(self, obs_tm1, a_tm1, r_t, done_t, obs_t):
    i = self._next
    self.obs_tm1[i], self.a_tm1[i], self.r_t[i] = obs_tm1, a_tm1, r_t
    self.done_t[i], self.obs_t[i] = done_t, obs_t
    self._next, self.size = (i + 1) % self.capacity, min(self.size + 1, self.capacity)

  def sample(self, batch_size: int) -> Batch:
    idx = self._rng.integers(self.size, size=batch_size)
    return Batch(self.obs_tm1[idx], self.a_tm1[idx], self.r_t[idx], self.done_t[idx],
                 self.obs_t[idx])


def epsilon_at(config: Config, step: int) -> float:
  """Linear decay from `epsilon_start` to `epsilon_end` over the first
  `epsilon_fraction` of the budget, then constant."""
  decay_steps = max(1, int(config.epsilon_fraction * config.env_steps))
  frac = min(1., step / decay_steps)
  return config.epsilon_start + frac * (config.epsilon_end - config.epsilon_start)


def _act(q_fn, params, obs, epsilon, num_actions, rng):
  if rng.random() < epsilon:
    return int(rng.integers(num_actions))
  return int(np.argmax(np.asarray(q_fn(params, obs[None]))[0]))


def evaluate(q_fn, params, env, config: Config, rng: np.random.Generator) -> float:
  """Mean return of `config.test_episodes` episodes at `config.test_epsilon`."""
  total = 0.
  env.reset(seed=int(rng.integers(2 ** 31)))  # each test its own seeded stream
  for _ in range(config.test_episodes):
    obs, _ = env.reset()
    done = False
    while not done:
      action = _act(q_fn, params, obs, config.test_epsilon, env.action_space.n, rng)
      obs, r, terminated, truncated, _ = env.step(action)
      total += r
      done = terminated or truncated
  return total / config.test_episodes


def train(config: Config, out=None):
  """Runs DQN for `config.env_steps` steps; prints and returns the test records."""
  out = out or sys.stdout
  env_rng, act_rng, replay_rng, test_rng = (
      np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(4))
  env = envs.make_minatar(config.game, max_episode_steps=MAX_EPISODE_STEPS,
                          sticky_action_prob=STICKY_ACTION_PROB,
                          difficulty_ramping=DIFFICULTY_RAMPING)
  test_env = envs.make_minatar(config.game, max_episode_steps=MAX_EPISODE_STEPS,
                               sticky_action_prob=STICKY_ACTION_PROB,
                               difficulty_ramping=DIFFICULTY_RAMPING)
  num_actions = env.action_space.n
  obs, _ = env.reset(seed=int(env_rng.integers(2 ** 31)))
  network, optimizer = q_network(num_actions), make_optimizer(config)
  params = network.init(jax.random.PRNGKey(config.seed), obs[None])
  target_params, opt_state = params, optimizer.init(params)
  update = make_update(network, optimizer, config.discount)
  q_fn = jax.jit(network.apply)
  buffer = ReplayBuffer(config.buffer_size, obs.shape, replay_rng)
  start, records, episodes, updates = time.perf_counter(), [], 0, 0
  for step in range(1, config.env_steps + 1):
    epsilon = epsilon_at(config, step - 1)
    action = _act(q_fn, params, obs, epsilon, num_actions, act_rng)
    next_obs, r, terminated, truncated, _ = env.step(action)
    buffer.add(obs, action, r, float(terminated), next_obs)
    obs = next_obs
    if terminated or truncated:
      obs, _ = env.reset()
      episodes += 1
    if buffer.size >= config.replay_start:
      params, opt_state, _ = update(params, target_params, opt_state,
                                    buffer.sample(config.batch_size))
      updates += 1
      if updates % config.target_update == 0:
        target_params = params
    if step % config.test_interval == 0 or step == config.env_steps:
      record = dict(bench="dqn_minatar", env_steps=step,
                    test_return=evaluate(q_fn, params, test_env, config, test_rng),
                    seconds=round(time.perf_counter() - start, 1), episodes=episodes,
                    updates=updates, epsilon=round(epsilon, 3))
      records.append(record)
      print(json.dumps(record), file=out, flush=True)
  return records


def summarize(config: Config, records) -> dict:
  best = max(records, key=lambda r: r["test_return"])
  final = records[-1]
  return dict(bench="dqn_minatar", summary=True, game=config.game, seed=config.seed,
              env_steps=final["env_steps"], episodes=final["episodes"],
              updates=final["updates"], seconds=final["seconds"],
              final_test_return=final["test_return"],
              best_test_return=best["test_return"], best_at_env_steps=best["env_steps"],
              sticky_action_prob=STICKY_ACTION_PROB, max_episode_steps=MAX_EPISODE_STEPS,
              difficulty_ramping=DIFFICULTY_RAMPING, config=dataclasses.asdict(config))


def parse_args(argv=None) -> Config:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  for field in dataclasses.fields(Config):
    kwargs = dict(type=type(field.default), default=field.default)
    if field.name == "game":
      kwargs["choices"] = envs.MINATAR_GAMES
    elif field.name == "optimizer":
      kwargs["choices"] = ("adam", "rmsprop")
    parser.add_argument("--" + field.name.replace("_", "-"), **kwargs)
  return Config(**vars(parser.parse_args(argv)))


def main(argv=None, out=None):
  out = out or sys.stdout
  config = parse_args(argv)
  records = train(config, out)
  print(json.dumps(summarize(config, records)), file=out, flush=True)


if __name__ == "__main__":
  main()
