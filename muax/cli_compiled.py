"""`muax train gymnax:<id>` and `muax train pgx:<game>`: the compiled loop.

The command line's settings for JAX environments (`muax.jax_envs`), trained by
`muax.loop.compiled_fit.fit_compiled`: per-environment defaults for options
not given (`ENV_DEFAULTS`), how much to learn per env step (`LOOP_DEFAULTS`),
and the model, loop config and budget a `TrainConfig` asks for
(`compiled_setup`).
"""
import dataclasses
import time
from typing import Any, Optional

import gymnasium as gym
import numpy as np

__all__ = ["CompiledResult", "ENV_DEFAULTS", "LOOP_DEFAULTS", "OPENINGS", "compiled_setup",
           "train_compiled"]

# Settings for options not given on the command line.
ENV_DEFAULTS = {
    # gymnax CartPole (benchmarks/compiled_cartpole.py measures exactly these):
    # the CLI's CartPole networks, Gumbel 8 over 16 environments (discount 0.99
    # solved 5 of 5 seeds in a median 20,000 env steps, 0.997 in 44,000).
    "gymnax:CartPole-v1": dict(policy="gumbel", num_simulations=8, num_envs=16, k_steps=5,
                               num_trajectory=64, max_training_steps=12500),
    # MinAtar: benchmarks/minatar.py's search and targets (Gumbel 16, K 5, n 10)
    # over 32 environments, with the CLI's conv nets.
    "gymnax:Breakout-MinAtar": dict(policy="gumbel", num_simulations=16, num_envs=32,
                                    k_steps=5, learning_rate=3e-3, end_learning_rate=3e-4,
                                    num_trajectory=16, sample_per_trajectory=2,
                                    max_training_steps=12500),
    # Tic-tac-toe: the host example's networks and search (examples/tictactoe.py);
    # 48,000 updates lost 3 / 7 of 200 games to the perfect player where 16,000
    # lost 30 / 157 (seeds 0 / 1, benchmarks/compiled_tictactoe.py).
    "pgx:tic_tac_toe": dict(policy="gumbel", num_simulations=25, support_size=2, hidden=128,
                            embedding_dim=32, discount=1., n_step=9, k_steps=5,
                            learning_rate=3e-3, end_learning_rate=3e-4, num_envs=16,
                            num_trajectory=128, max_training_steps=48000),
    # Pendulum: Sampled MuZero with the host loop's Pendulum settings
    # (cli.POLICY_DEFAULTS['sampled']) over 16 environments.
    "gymnax:Pendulum-v1": dict(policy="sampled", num_envs=16),
    # 2048: Stochastic MuZero (the new tiles as chance, 32 codes) with pUCT 16
    # over 16 games; support 50 holds values up to about 2,400 (a game's score
    # is the sum of its merged tiles). benchmarks/compiled_2048.py compares it
    # with plain MuZero on the same budget.
    "pgx:2048": dict(policy="stochastic", num_simulations=16, num_envs=16, support_size=50,
                     hidden=128, embedding_dim=32, discount=.99, n_step=10, k_steps=5,
                     num_chance_outcomes=32, learning_rate=3e-3, end_learning_rate=3e-4,
                     num_trajectory=64, max_training_steps=10000),
}
# How much the loop learns: updates per env step, replay capacity and warm-up
# in env steps (all environments together). Otherwise half an update per env
# step, 50,000 steps kept and `--buffer-warm-up` steps before learning.
LOOP_DEFAULTS = {
    "gymnax:CartPole-v1": dict(updates_per_env_step=1 / 16, capacity=16_000,
                               learning_starts=256),
    "gymnax:Breakout-MinAtar": dict(updates_per_env_step=1 / 8, capacity=100_000,
                                    learning_starts=1_000),
    # Pendulum: the host loop's 200 episodes kept and 4 before learning.
    "gymnax:Pendulum-v1": dict(capacity=40_000, learning_starts=800),
}
# Self-play games start after 0..N random moves (tests start from the empty board):
# as second mover against a random player, tic-tac-toe lost 3-19% of its games
# without them and 1-6% with 3 (benchmarks/compiled_tictactoe.py, last five tests).
OPENINGS = {"pgx:tic_tac_toe": 3}
_PGX_TEST_STEPS = {"pgx:tic_tac_toe": 9}


@dataclasses.dataclass(frozen=True)
class CompiledResult:
  """What `muax train` reports of a compiled-loop run."""
  best_path: Optional[str]
  best_test: Optional[float]
  env_steps: int
  updates: int
  seconds: float
  two_player: bool = False

  def summary(self) -> str:
    best = "-" if self.best_test is None else f"{self.best_test:.2f}"
    against = " (wins minus losses per game against a random player)" if self.two_player else ""
    return (f"muax train: {self.env_steps:,} env steps, {self.updates:,} updates in "
            f"{self.seconds:.0f} s; best test {best}{against}; best checkpoint: "
            f"{self.best_path}")


def compiled_setup(config: Any) -> dict:
  """What `muax train gymnax:<id>|pgx:<game>` trains, for a `cli.TrainConfig`:
  `model` (initialised), `env` (pgx: with the game's random openings),
  `test_env`, `loop_config`, `max_env_steps`, `chunk` (iterations between
  tests), `test_episodes` (pgx: 100, half from each seat; else
  `--num-test-episodes`), `test_max_steps` and `target_return`."""
  import jax  # noqa: PLC0415
  from muax import cli_build  # noqa: PLC0415
  from muax import jax_envs  # noqa: PLC0415
  from muax import variants  # noqa: PLC0415
  from muax.loop.jitted import POLICIES  # noqa: PLC0415
  from muax.loop.jitted import CompiledConfig  # noqa: PLC0415
  from muax.loop.jitted import temperature_schedule  # noqa: PLC0415
  pgx = config.env_id.startswith("pgx:")
  try:
    env = jax_envs.make(config.env_id, **(
        {"random_openings": OPENINGS.get(config.env_id, 0)} if pgx else {}))
    test_env = jax_envs.make(config.env_id) if pgx else env
  except (ValueError, ImportError) as e:
    raise SystemExit(f"muax train: cannot make {config.env_id}: {e}") from None
  if config.policy not in POLICIES:
    raise SystemExit(f"muax train: {config.env_id} trains with policy {' or '.join(POLICIES)}, "
                     f"not {config.policy}")
  # (board games have discrete moves: not policy sampled)
  two_players = [p for p in POLICIES
                 if "two_player" in variants.get(p).supports and p != "sampled"]
  if env.num_players == 2 and config.policy not in two_players:
    raise SystemExit(f"muax train: {config.env_id} is a two-player game; policy "
                     f"{config.policy} plans for one player (use {' or '.join(two_players)})")
  # gymnax's image-shaped observations (MinAtar's [10, 10, C] planes) get the
  # conv nets; they are float 0/1 already, so not divided by 255 (only uint8
  # is). Board games keep the MLPs their defaults were measured with.
  images = (gym.spaces.Box(0, 255, env.observation_shape, np.uint8)
            if len(env.observation_shape) == 3 and not pgx else None)
  # gymnax's Box (Pendulum-v1) for policy sampled; discrete spaces for the others
  # (cli_build refuses a policy the space cannot take, by name).
  space = getattr(env, "action_space", None)
  space = gym.spaces.Discrete(env.num_actions) if space is None else space
  model = cli_build.build_model(config, space, two_player=env.num_players == 2,
                                observation_space=images)
  model.init(jax.random.PRNGKey(config.seed), np.zeros((1,) + env.observation_shape, np.float32))
  num_envs = config.num_envs or 16
  loop = LOOP_DEFAULTS.get(config.env_id, {})
  updates = max(1, round(num_envs * loop.get("updates_per_env_step", 0.5)))
  loop_config = CompiledConfig(
      num_envs=num_envs, num_simulations=config.num_simulations, k_steps=config.k_steps,
      n=config.n_step, batch_size=config.num_trajectory * config.sample_per_trajectory,
      updates_per_iteration=updates,
      capacity=max(64, loop.get("capacity", 50_000) // num_envs),
      learning_starts=max(1, loop.get("learning_starts", config.buffer_warm_up) // num_envs),
      discount=config.discount, temperature=temperature_schedule(config.max_training_steps),
      replay=config.replay, priority_alpha=config.priority_alpha,
      priority_beta=config.priority_beta, priority_beta_steps=config.max_training_steps)
  max_env_steps = config.max_training_steps * num_envs // updates
  target = config.target_return
  if target is None and not pgx:
    target = _reward_threshold(config.env_id.partition(":")[2])
  return dict(model=model, env=env, test_env=test_env, loop_config=loop_config,
              max_env_steps=max_env_steps, chunk=max(1, min(1600, max_env_steps) // num_envs),
              test_episodes=100 if pgx else config.num_test_episodes,
              test_max_steps=(_PGX_TEST_STEPS.get(config.env_id, 1000) if pgx
                              else env.max_steps or 1000),
              target_return=target)


def _reward_threshold(env_id: str) -> Optional[float]:
  """gymnasium's `reward_threshold` of the same id (CartPole-v1: 475), if any."""
  try:
    return gym.spec(env_id).reward_threshold
  except gym.error.Error:
    return None


def train_compiled(config: Any) -> CompiledResult:
  """`muax train gymnax:<id>|pgx:<game>`: the compiled loop (`fit_compiled`)."""
  from muax.loop.compiled_fit import fit_compiled  # noqa: PLC0415
  setup = compiled_setup(config)
  model = setup["model"]
  name = (config.name or f"{config.env_id}_{config.policy}_seed{config.seed}").replace(":", "-")
  start = time.perf_counter()
  seen = {}

  def on_chunk(summary):
    seen["last"] = summary
    if summary["test_return"] > seen.get("best", {}).get("test_return", -np.inf):
      seen["best"] = summary

  path = fit_compiled(
      model, setup["env"], config=setup["loop_config"], max_env_steps=setup["max_env_steps"],
      test_env=setup["test_env"], chunk=setup["chunk"], test_episodes=setup["test_episodes"],
      test_max_steps=setup["test_max_steps"], target_return=setup["target_return"],
      model_save_path=config.save_dir or f"runs/models/{name}", save_name=name,
      tensorboard_dir=f"{config.logdir}/{name}", progress_bar=config.progress,
      resume=config.resume, random_seed=config.seed, on_chunk=on_chunk)
  return CompiledResult(best_path=path, best_test=seen.get("best", {}).get("test_return"),
                        env_steps=int(seen.get("last", {}).get("env_steps", 0)),
                        updates=int(model.train_state.count),
                        seconds=time.perf_counter() - start,
                        two_player=bool(model.two_player))
