"""The `muax` command line: `muax train ENV_ID [options]`.

Every option comes from a field of `TrainConfig`, so `muax train --help`
documents exactly what the code reads.
"""
import argparse
import dataclasses
import functools
import sys
from typing import Any, Collection, Optional, Sequence, Union

import gymnasium as gym
import numpy as np

from muax import variants

__all__ = ["TrainConfig", "build_buffer", "build_model", "build_reanalyze", "main", "train"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Settings of `muax train`; the defaults solve CartPole-v1 in about a minute."""
  env_id: str = dataclasses.field(metadata={
      "help": "gymnasium environment id, e.g. CartPole-v1, or a two-player PettingZoo "
              "classic game as pettingzoo:<module>, e.g. pettingzoo:tictactoe_v3 "
              "(self-play; tests against a random player), or a pixel game as "
              "minatar:<game> (e.g. minatar:breakout) or atari:<Game> (e.g. atari:Pong), "
              "trained with residual conv nets (muax.envs), or a pgx game as pgx:<game> "
              "(e.g. pgx:tic_tac_toe), trained by the compiled loop (muax.loop.jitted)"})
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


# JAX environments, trained by the compiled loop (`fit_compiled`): settings for
# options not given, and the test's episode length. Tic-tac-toe: the host
# example's networks and search (examples/tictactoe.py), half an update per move.
ENV_DEFAULTS = {
    "pgx:tic_tac_toe": dict(policy="gumbel", num_simulations=25, support_size=2, hidden=128,
                            embedding_dim=32, discount=1., n_step=9, k_steps=5,
                            learning_rate=3e-3, end_learning_rate=3e-4, num_envs=16,
                            num_trajectory=128, max_training_steps=20000),
}
TEST_STEPS = {"pgx:tic_tac_toe": 9}
# Self-play games start after 0..N random moves (tests start from the empty board):
# as second mover against a random player, tic-tac-toe lost 3-19% of its games
# without them and 1-6% with 3 (benchmarks/compiled_tictactoe.py, last five tests).
OPENINGS = {"pgx:tic_tac_toe": 3}


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


def build_model(config: TrainConfig, num_actions: Union[int, gym.spaces.Space], *,
                two_player: bool = False,
                observation_space: Optional[gym.spaces.Space] = None) -> Any:
  """The MuZero the command line trains: MLPs, or residual conv nets for images.

  `num_actions` is the number of discrete actions, or the action space (a
  Box for `policy='sampled'`). An `observation_space` of uint8 images
  `[H, W, C]` gets `nn.resnet_networks` (downsampled MuZero-style from 32
  pixels up, e.g. Atari's 96x96; not at all below, e.g. MinAtar's 10x10).
  """
  import muax
  from muax import nn
  space = num_actions if isinstance(num_actions, gym.spaces.Space) else None
  if space is not None:
    if config.policy == "sampled":
      if not isinstance(space, gym.spaces.Box):
        raise SystemExit(f"muax train: policy sampled needs a Box action space, got {space}")
    elif not isinstance(space, gym.spaces.Discrete):
      raise SystemExit(f"muax train: {config.env_id} has action space {space}; policy "
                       f"{config.policy} plans over discrete actions (use --policy sampled "
                       "for continuous ones)")
    else:
      num_actions = int(space.n)
  size = 2 * config.support_size + 1
  hidden = (config.hidden,)
  if config.policy == "sampled":  # measured on Pendulum-v1 (benchmarks/pendulum.py)
    gradient_transform = muax.model.optimizer(
        init_value=0., peak_value=config.learning_rate, end_value=config.end_learning_rate,
        warmup_steps=100, transition_steps=2000)
  else:
    gradient_transform = muax.model.optimizer(
        init_value=config.learning_rate, peak_value=config.learning_rate,
        end_value=config.end_learning_rate, warmup_steps=5000, transition_steps=5000)
  if _is_image(observation_space):
    if "images" not in variants.get(config.policy).supports:
      raise SystemExit(f"muax train: image observations are trained with policy "
                       f"{_policies('images')}, not {config.policy}")
    downsample = "muzero" if min(observation_space.shape[:2]) >= 32 else 1
    return muax.MuZero(
        *nn.resnet_networks(num_actions, config.support_size, channels=32, num_blocks=1,
                            prediction_blocks=0, dynamic_blocks=1, downsample=downsample,
                            head_hidden=hidden),
        policy=config.policy, optimizer=gradient_transform, discount=config.discount,
        support_size=config.support_size, two_player=two_player)
  common = dict(embedding_dim=config.embedding_dim, hidden=hidden,
                support_size=config.support_size, discount=config.discount,
                optimizer=gradient_transform)
  if config.policy == "stochastic":
    from muax import stochastic
    return stochastic.build_model(num_actions, num_chance_outcomes=config.num_chance_outcomes,
                                  **common)
  if config.policy == "sampled":
    from muax import sampled
    return sampled.build_model(space, num_samples=config.num_samples, **common)
  return muax.MuZero(
      nn._init_representation_func(nn.Representation, config.embedding_dim, hidden=hidden),
      nn._init_prediction_func(nn.Prediction, num_actions, size, hidden=hidden),
      nn._init_dynamic_func(nn.Dynamic, config.embedding_dim, num_actions, size, hidden=hidden),
      policy=config.policy, optimizer=gradient_transform, discount=config.discount,
      support_size=config.support_size, two_player=two_player,
      **_loss_options(config))


def _loss_options(config: TrainConfig) -> dict:
  """`MuZero` keywords for `--consistency` and `--value-prefix`."""
  import muax
  if config.value_prefix:
    return dict(value_prefix=True, consistency_weight=config.consistency)
  if config.consistency:
    return dict(loss_fn=muax.loss.make_loss_fn(consistency_weight=config.consistency))
  return {}


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
  if config.env_id.startswith("pgx:"):
    return train_compiled(config)
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


@dataclasses.dataclass(frozen=True)
class CompiledResult:
  """What `muax train` reports of a compiled-loop run."""
  best_path: Optional[str]
  best_test: Optional[float]
  env_steps: int
  updates: int
  seconds: float

  def summary(self) -> str:
    best = "-" if self.best_test is None else f"{self.best_test:.2f}"
    return (f"muax train: {self.env_steps:,} env steps, {self.updates:,} updates in "
            f"{self.seconds:.0f} s; best test {best} (vs a random player, "
            f"wins minus losses per game, in two-player games); best checkpoint: "
            f"{self.best_path}")


def compiled_setup(config: TrainConfig) -> dict:
  """What `muax train pgx:<game>` trains: `model` (initialised), `env` (with
  the game's random openings), `test_env`, `loop_config`, `max_env_steps`
  and `chunk` (iterations between tests)."""
  import jax
  from muax import jax_envs
  from muax.loop.jitted import CompiledConfig
  try:
    env = jax_envs.make(config.env_id, random_openings=OPENINGS.get(config.env_id, 0))
    test_env = jax_envs.make(config.env_id)
  except (ValueError, ImportError) as e:
    raise SystemExit(f"muax train: cannot make {config.env_id}: {e}") from None
  if config.policy not in ("muzero", "gumbel"):
    raise SystemExit(f"muax train: {config.env_id} trains with policy muzero or gumbel, not "
                     f"{config.policy}")
  model = build_model(config, env.num_actions, two_player=env.num_players == 2)
  model.init(jax.random.PRNGKey(config.seed), np.zeros((1,) + env.observation_shape, np.float32))
  num_envs = config.num_envs or 16
  updates = max(1, num_envs // 2)  # half an update per env step
  loop_config = CompiledConfig(
      num_envs=num_envs, num_simulations=config.num_simulations, k_steps=config.k_steps,
      n=config.n_step, batch_size=config.num_trajectory * config.sample_per_trajectory,
      updates_per_iteration=updates, capacity=max(64, 50_000 // num_envs),
      learning_starts=max(1, config.buffer_warm_up // num_envs), discount=config.discount)
  max_env_steps = config.max_training_steps * num_envs // updates
  return dict(model=model, env=env, test_env=test_env, loop_config=loop_config,
              max_env_steps=max_env_steps, chunk=max(1, min(1600, max_env_steps) // num_envs))


def train_compiled(config: TrainConfig) -> CompiledResult:
  """`muax train pgx:<game>`: the compiled loop (`muax.loop.compiled_fit`)."""
  import time
  from muax.loop.compiled_fit import fit_compiled
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
      test_env=setup["test_env"], chunk=setup["chunk"], test_episodes=100,
      test_max_steps=TEST_STEPS.get(config.env_id, 1000), target_return=config.target_return,
      model_save_path=config.save_dir or f"runs/models/{name}", save_name=name,
      tensorboard_dir=f"{config.logdir}/{name}", progress_bar=config.progress,
      resume=config.resume, random_seed=config.seed, on_chunk=on_chunk)
  return CompiledResult(best_path=path, best_test=seen.get("best", {}).get("test_return"),
                        env_steps=int(seen.get("last", {}).get("env_steps", 0)),
                        updates=int(model.train_state.count),
                        seconds=time.perf_counter() - start)


def _parser(suppress_defaults: bool = False):
  parser = argparse.ArgumentParser(prog="muax", description="MuZero with mctx for gymnasium.")
  commands = parser.add_subparsers(dest="command", required=True)
  train_parser = commands.add_parser(
      "train", help="train a MuZero agent on a gymnasium environment",
      description="Train MuZero on a gymnasium environment (discrete actions; continuous "
                  "ones with --policy sampled) or a PettingZoo board game. Stops at the "
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


def _is_image(space) -> bool:
  return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
          and len(space.shape) == 3)


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


def _policies(*options) -> str:
  """'muzero or gumbel': the policies that support every one of `options`."""
  names = [p for p in variants.names() if set(options) <= set(variants.get(p).supports)]
  return " or ".join(names)
