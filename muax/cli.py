"""The `muax` command line: `muax train ENV_ID [options]`.

Every option comes from a field of `TrainConfig`, so `muax train --help`
documents exactly what the code reads.
"""
import argparse
import dataclasses
import functools
import sys
from typing import Any, Collection, Optional, Sequence

import gymnasium as gym

from muax import cli_compiled
from muax import variants
from muax.cli_build import build_model
from muax.cli_build import policies as _policies

__all__ = ["TrainConfig", "build_buffer", "build_model", "build_reanalyze", "main", "train"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Settings of `muax train`; the defaults solve CartPole-v1 in about a minute."""
  env_id: str = dataclasses.field(metadata={
      "help": "gymnasium environment id, e.g. CartPole-v1, or a two-player PettingZoo "
              "classic game as pettingzoo:<module>, e.g. pettingzoo:tictactoe_v3 "
              "(self-play; tests against a random player), or a pixel game as "
              "minatar:<game> (e.g. minatar:breakout) or atari:<Game> (e.g. atari:Pong), "
              "trained with residual conv nets (muax.envs), or a JAX environment, "
              "trained by the compiled loop (muax.loop.jitted): gymnax:<id> (e.g. "
              "gymnax:CartPole-v1, gymnax:Breakout-MinAtar) or pgx:<game> (e.g. "
              "pgx:tic_tac_toe)"})
  policy: str = dataclasses.field(default="muzero", metadata={
      "help": "search: muzero (mctx.muzero_policy), gumbel (mctx.gumbel_muzero_policy), "
              "stochastic (Stochastic MuZero, chance outcomes learned) or sampled "
              "(Sampled MuZero, for continuous Box actions)",
      "choices": ("muzero", "gumbel", "stochastic", "sampled")})
  num_chance_outcomes: int = dataclasses.field(default=32, metadata={
      "help": "policy stochastic: size of the learned chance-outcome codebook"})
  num_samples: int = dataclasses.field(default=16, metadata={
      "help": "policy sampled: actions sampled per search node"})
  num_simulations: int = dataclasses.field(default=50, metadata={"help": "simulations per decision"})
  max_episodes: int = dataclasses.field(default=1000, metadata={"help": "training episodes at most"})
  max_training_steps: int = dataclasses.field(default=20000, metadata={"help": "updates at most"})
  target_return: Optional[float] = dataclasses.field(default=None, metadata={
      "help": "stop when a greedy test reaches this return (default: the env's reward threshold)"})
  test_interval: int = dataclasses.field(default=10, metadata={"help": "episodes between greedy tests"})
  num_test_episodes: int = dataclasses.field(default=10, metadata={"help": "episodes per test"})
  embedding_dim: int = dataclasses.field(default=8, metadata={"help": "hidden state size"})
  hidden: int = dataclasses.field(default=64, metadata={"help": "width of the networks' hidden layers"})
  support_size: int = dataclasses.field(default=10, metadata={
      "help": "value/reward support is -S..S after the h transform"})
  discount: float = dataclasses.field(default=0.99, metadata={"help": "discount factor"})
  n_step: int = dataclasses.field(default=10, metadata={"help": "n of the n-step value targets"})
  k_steps: int = dataclasses.field(default=10, metadata={"help": "unroll length K"})
  buffer_capacity: int = dataclasses.field(default=500, metadata={"help": "trajectories kept in replay"})
  buffer_warm_up: int = dataclasses.field(default=128, metadata={
      "help": "trajectories collected before learning"})
  num_trajectory: int = dataclasses.field(default=32, metadata={"help": "trajectories per batch"})
  sample_per_trajectory: int = dataclasses.field(default=1, metadata={"help": "windows per trajectory"})
  num_update_per_episode: int = dataclasses.field(default=50, metadata={"help": "updates per episode"})
  learning_rate: float = dataclasses.field(default=0.02, metadata={"help": "peak learning rate"})
  end_learning_rate: float = dataclasses.field(default=0.002, metadata={
      "help": "the learning rate decays towards this"})
  num_envs: Optional[int] = dataclasses.field(default=None, metadata={
      "help": "environments played at once with one batched search per step "
              "(default: picked for this machine, see muax.cli.default_num_envs)"})
  seed: int = dataclasses.field(default=0, metadata={"help": "random seed"})
  logdir: str = dataclasses.field(default="runs/tensorboard", metadata={"help": "TensorBoard root"})
  save_dir: Optional[str] = dataclasses.field(default=None, metadata={
      "help": "checkpoint folder (default runs/models/<name>)"})
  name: Optional[str] = dataclasses.field(default=None, metadata={"help": "run name"})
  progress: bool = dataclasses.field(default=True, metadata={"help": "show a progress bar"})
  resume: bool = dataclasses.field(default=False, metadata={
      "help": "continue the run saved under this run's name (or --save-dir) from its "
              "newest run state; starts a new run if there is none"})
  checkpoint_interval: float = dataclasses.field(default=60., metadata={
      "help": "seconds between saved run states (0: after every episode)"})
  keep_checkpoints: int = dataclasses.field(default=3, metadata={
      "help": "newest run states and best-so-far checkpoints kept"})
  max_consecutive_skipped: int = dataclasses.field(default=200, metadata={
      "help": "stop after this many updates in a row with a non-finite loss or gradient"})
  replay: str = dataclasses.field(default="uniform", metadata={
      "help": "replay sampling: uniform (trajectories, then windows) or prioritized "
              "(windows by their value error, with importance-sampling weights)",
      "choices": ("uniform", "prioritized")})
  priority_alpha: float = dataclasses.field(default=0.6, metadata={
      "help": "replay prioritized: how much priorities count (0: uniform)"})
  priority_beta: float = dataclasses.field(default=0.4, metadata={
      "help": "replay prioritized: importance-sampling exponent at the start (annealed "
              "to 1 over the run's updates)"})
  reanalyze: float = dataclasses.field(default=0., metadata={
      "help": "share of each batch whose targets are recomputed with a target network "
              "(0: off; policy muzero or gumbel)"})
  reanalyze_simulations: Optional[int] = dataclasses.field(default=None, metadata={
      "help": "simulations of each reanalysis search (default: --num-simulations)"})
  target_update_interval: int = dataclasses.field(default=100, metadata={
      "help": "updates between refreshes of the reanalysis target network"})
  consistency: float = dataclasses.field(default=0., metadata={
      "help": "weight of the EfficientZero consistency loss (0: off; policy muzero or gumbel)"})
  value_prefix: bool = dataclasses.field(default=False, metadata={
      "help": "predict sums of rewards with an LSTM along the unroll (EfficientZero's "
              "value prefix; policy muzero or gumbel)"})


# Settings that suit a policy better than the CartPole-tuned defaults above;
# `muax train` uses them for options not given on the command line.
# Sampled MuZero on Pendulum-v1 (`benchmarks/pendulum.py`): returns down to
# about -1600 need a wide support, and 200-step episodes a short warm-up.
POLICY_DEFAULTS = {
    "sampled": dict(support_size=30, embedding_dim=64, n_step=10, k_steps=5,
                    num_simulations=16, num_update_per_episode=100, num_trajectory=16,
                    sample_per_trajectory=8, buffer_capacity=200, buffer_warm_up=4,
                    learning_rate=3e-3, end_learning_rate=3e-4, max_training_steps=30000),
}


# Settings for options not given, per environment (`muax.cli_compiled`: the
# JAX environments the compiled loop trains).
ENV_DEFAULTS = cli_compiled.ENV_DEFAULTS


def config_from_args(values: dict, given: Collection[str] = ()) -> TrainConfig:
  """A TrainConfig of parsed option `values`; options not in `given` take the
  environment's `ENV_DEFAULTS`, then the policy's `POLICY_DEFAULTS`."""
  merged = dict(values)
  merged.update({k: v for k, v in ENV_DEFAULTS.get(values.get("env_id"), {}).items()
                 if k not in given})
  defaults = POLICY_DEFAULTS.get(merged.get("policy"), {})
  merged.update({k: v for k, v in defaults.items() if k not in given})
  return TrainConfig(**merged)


def default_num_envs() -> int:
  """Environments `muax train` plays at once when `--num-envs` is not given.

  On an accelerator, 16: a batched search over 16 roots costs about what one
  costs there. On a CPU, 1: measured on a 2-core machine
  (`benchmarks/cartpole_solve.py`), the default muzero configuration solved
  CartPole-v1 with 3 of 3 seeds with one environment and with 1 of 3 at 8
  (its episodes are played by parameters up to two learning calls old, and
  with more environments at once each episode spans more updates).
  """
  import jax
  return 1 if jax.default_backend() == "cpu" else 16


def build_buffer(config: TrainConfig) -> Any:
  """The replay buffer of `--replay` (seeded with `--seed`)."""
  import muax
  if config.replay == "prioritized":
    return muax.PrioritizedReplayBuffer(
        config.buffer_capacity, random_seed=config.seed, alpha=config.priority_alpha,
        beta=config.priority_beta, beta_steps=config.max_training_steps)
  return muax.TrajectoryReplayBuffer(config.buffer_capacity, random_seed=config.seed)


def build_reanalyze(config: TrainConfig) -> Any:
  """`muax.Reanalyze` of `--reanalyze` and its options, or None when off."""
  import muax
  if not config.reanalyze:
    return None
  return muax.Reanalyze(
      fraction=config.reanalyze, target_update_interval=config.target_update_interval,
      num_simulations=config.reanalyze_simulations or config.num_simulations,
      seed=config.seed)


def train(config: TrainConfig) -> Any:
  """Runs `muax.train.run` for a config; returns its `FitResult`."""
  import muax
  from muax import envs
  from muax import games
  from muax import jax_envs
  if jax_envs.is_jax_env_id(config.env_id):
    return cli_compiled.train_compiled(config)
  two_player = games.is_game_id(config.env_id)
  if two_player:
    make = functools.partial(games.make, config.env_id)
  elif envs.is_pixel_env_id(config.env_id):
    make = functools.partial(envs.make, config.env_id)
  else:
    make = functools.partial(gym.make, config.env_id)
  try:
    env = make()
  except (gym.error.Error, ImportError, ValueError) as e:
    raise SystemExit(f"muax train: cannot make {config.env_id}: {e}") from None
  target = config.target_return
  if target is None and not two_player:
    target = getattr(env.spec, "reward_threshold", None)
  name = (config.name or f"{config.env_id}_{config.policy}_seed{config.seed}").replace(":", "-")
  wanted = [option for option, on in (("reanalysis", config.reanalyze),
                                      ("consistency", config.consistency),
                                      ("value_prefix", config.value_prefix)) if on]
  if any(option not in variants.get(config.policy).supports for option in wanted):
    raise SystemExit(f"muax train: --reanalyze, --consistency and --value-prefix work with "
                     f"policy {_policies(*wanted)}, not {config.policy}")
  try:
    buffer, reanalyze = build_buffer(config), build_reanalyze(config)
    model = build_model(config, env.action_space, two_player=two_player,
                        observation_space=env.observation_space)
  except ValueError as e:
    raise SystemExit(f"muax train: {e}") from None
  num_envs = default_num_envs() if config.num_envs is None else config.num_envs
  if num_envs > 1:
    env.close()
    env = make  # a factory for the vector env
  return muax.train.run(
      model, env=env, test_env=make(), num_envs=num_envs,
      opponent=games.RandomOpponent(config.seed) if two_player else None,
      tracer=muax.PNStep(config.n_step, config.discount, 0.5, two_player=two_player),
      buffer=buffer, reanalyze=reanalyze,
      max_episodes=config.max_episodes, test_interval=config.test_interval,
      num_test_episodes=config.num_test_episodes,
      max_training_steps=config.max_training_steps, num_simulations=config.num_simulations,
      k_steps=config.k_steps, buffer_warm_up=config.buffer_warm_up,
      num_trajectory=config.num_trajectory,
      sample_per_trajectory=config.sample_per_trajectory, name=name,
      tensorboard_dir=config.logdir,
      model_save_path=config.save_dir or f"runs/models/{name}",
      random_seed=config.seed, log_all_metrics=True,
      num_update_per_episode=config.num_update_per_episode, target_return=target,
      progress=config.progress, resume=config.resume,
      checkpoint_interval=config.checkpoint_interval,
      keep_checkpoints=config.keep_checkpoints,
      max_consecutive_skipped=config.max_consecutive_skipped)


def _parser(suppress_defaults: bool = False):
  parser = argparse.ArgumentParser(prog="muax", description="MuZero with mctx for gymnasium.")
  commands = parser.add_subparsers(dest="command", required=True)
  train_parser = commands.add_parser(
      "train", help="train a MuZero agent on a gymnasium environment",
      description="Train MuZero on a gymnasium environment (discrete actions; continuous "
                  "ones with --policy sampled), a PettingZoo board game, or a JAX environment "
                  "(gymnax:<id>, pgx:<game>) in the compiled loop. Stops at the "
                  "target return or the budget, keeps the best checkpoint, writes "
                  "TensorBoard logs and prints a summary. With --policy sampled, options "
                  "not given take muax.cli.POLICY_DEFAULTS['sampled'] (tuned on "
                  "Pendulum-v1) instead of the defaults shown.",
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  for field in dataclasses.fields(TrainConfig):
    meta = dict(field.metadata)
    if field.name == "env_id":
      train_parser.add_argument("env_id", help=meta["help"])
      continue
    flag = "--" + field.name.replace("_", "-")
    default = argparse.SUPPRESS if suppress_defaults else field.default
    if field.type is bool:
      train_parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=default, help=meta["help"])
      continue
    kind = {"int": int, "float": float, "str": str}.get(
        getattr(field.type, "__name__", ""), None) or _optional_type(field.type)
    train_parser.add_argument(flag, type=kind, default=default,
                              choices=meta.get("choices"), help=meta["help"])
  return parser


def _optional_type(annotation):
  args = getattr(annotation, "__args__", ())
  return next(a for a in args if a is not type(None))


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  values = {k: v for k, v in vars(args).items() if k != "command"}
  given = vars(_parser(suppress_defaults=True).parse_args(argv))
  config = config_from_args(values, given)
  from muax import checkpoint
  from muax import train as train_lib
  try:
    result = train(config)
  except (train_lib.RunFolderInUse, train_lib.ResumeMismatch,
          checkpoint.CheckpointError) as e:
    raise SystemExit(f"muax train: {e}") from None
  print()
  print(result.summary())
  return 0


if __name__ == "__main__":
  sys.exit(main())
