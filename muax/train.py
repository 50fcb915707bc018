"""`fit`: collect episodes, learn from replay, evaluate, log and checkpoint.

The loop wires the separate pieces together: acting (`muax.acting`) produces
trajectories, the replay buffer stores and samples them, `MuZero.update`
learns, `muax.test.test` evaluates. Each learning call samples all its batches
with one gather and runs them in one dispatch (`MuZero.update_many`); with N
environments the host goes on acting while the device learns.
"""
import collections
import dataclasses
import datetime
import functools
import os
import time
from typing import Callable, List, Optional

import gymnasium as gym
import jax
import numpy as np

from muax import acting
from muax.episode_tracer import PNStep
from muax.model import mean_metrics
from muax.replay_buffer import TrajectoryReplayBuffer
from muax.test import test as evaluate

__all__ = ["FitResult", "default_temperature_fn", "fit", "run"]


def default_temperature_fn(max_training_steps, training_steps):
  """1.0 for the first half of training, 0.5 to three quarters, then 0.25."""
  if training_steps < 0.5 * max_training_steps:
    return 1.
  if training_steps < 0.75 * max_training_steps:
    return 0.5
  return 0.25


@dataclasses.dataclass
class TestRecord:
  """One evaluation during `fit`."""
  episode: int
  env_steps: int
  training_steps: int
  seconds: float
  test_return: float


@dataclasses.dataclass
class FitResult:
  """What a `fit` run produced; `fit` returns `best_path`."""
  best_path: str
  best_test_return: float
  episodes: int
  env_steps: int
  training_steps: int
  seconds: float
  logdir: str
  save_dir: str
  tests: List[TestRecord]

  def first_reaching(self, threshold: float) -> Optional[TestRecord]:
    """The first evaluation whose return reached `threshold`, if any."""
    return next((t for t in self.tests if t.test_return >= threshold), None)

  def summary(self) -> str:
    """A one-paragraph account of the run."""
    return (f"Trained for {self.episodes} episodes ({self.env_steps} environment steps, "
            f"{self.training_steps} updates) in {self.seconds:.0f} s. Best greedy test "
            f"return {self.best_test_return:.1f}; best checkpoint: {self.best_path} "
            f"(load it with model.load(path)). Checkpoints are in {self.save_dir}; "
            f"TensorBoard logs in {self.logdir} (tensorboard --logdir {self.logdir}).")


def fit(model, env_id=None, env=None, test_env=None, tracer=None, buffer=None,
        max_episodes=1000, test_interval=10, num_test_episodes=10,
        max_training_steps=10000, save_every_n_epochs=1, num_simulations=50,
        k_steps=10, buffer_warm_up=128, num_trajectory=32, sample_per_trajectory=10,
        name=None, tensorboard_dir=None, model_save_path=None, save_name=None,
        random_seed=42, temperature_fn=None, log_all_metrics=False,
        num_update_per_episode=50, *, target_return=None, progress=True,
        max_episode_steps=None, num_envs=1, vectorization="auto") -> str:
  """Trains `model` on an environment and returns the best checkpoint's path.

  Args:
    model: a `muax.MuZero` (initialised here if it has no params yet).
    env_id: a registered gymnasium id; exclusive with `env`.
    env: a gymnasium environment for training, or a function making one
      (needed for `num_envs > 1`), or a gymnasium vector environment with
      `autoreset_mode=SAME_STEP`; needs `test_env`.
    test_env: environment for the greedy evaluations.
    tracer: n-step tracer; a fresh `PNStep(50, 0.997, 0.5)` when None.
    buffer: replay buffer; a fresh `TrajectoryReplayBuffer(500)` when None.
    max_episodes: training episodes (after the warm-up).
    test_interval: evaluate every this many episodes (and at the end).
    num_test_episodes: episodes per evaluation.
    max_training_steps: stop after this many updates.
    save_every_n_epochs: write the `latest` checkpoint every this many episodes.
    num_simulations: search simulations per decision.
    k_steps: unroll length K.
    buffer_warm_up: trajectories collected before learning starts.
    num_trajectory: trajectories drawn per batch.
    sample_per_trajectory: windows per drawn trajectory.
    name: run name (sub-folder of the logs); a timestamped one when None.
    tensorboard_dir: TensorBoard root (default `tensorboard/`).
    model_save_path: checkpoint folder (default `models/<name>`).
    save_name: checkpoint file name (default `model_params`).
    random_seed: seeds keys, environment resets and replay sampling.
    temperature_fn: `fn(max_training_steps=, training_steps=) -> float`.
    log_all_metrics: also log every loss component.
    num_update_per_episode: updates after each episode.
    target_return: stop once a greedy test reaches this return.
    progress: show a progress bar.
    max_episode_steps: cap for environments without a time limit.
    num_envs: environments played at once, with one batched search per step
      for all of them (1: one environment, as before). With N > 1, updates
      run in one dispatch per episode and overlap with acting; the actors
      search with the parameters from before the latest dispatch.
    vectorization: 'sync', 'async' (a process per environment) or 'auto'
      (async only for environments whose step is slow).

  Returns:
    the path of the best checkpoint by test return, for `model.load`.
  """
  return run(model, env_id=env_id, env=env, test_env=test_env, tracer=tracer,
             buffer=buffer, max_episodes=max_episodes, test_interval=test_interval,
             num_test_episodes=num_test_episodes, max_training_steps=max_training_steps,
             save_every_n_epochs=save_every_n_epochs, num_simulations=num_simulations,
             k_steps=k_steps, buffer_warm_up=buffer_warm_up, num_trajectory=num_trajectory,
             sample_per_trajectory=sample_per_trajectory, name=name,
             tensorboard_dir=tensorboard_dir, model_save_path=model_save_path,
             save_name=save_name, random_seed=random_seed, temperature_fn=temperature_fn,
             log_all_metrics=log_all_metrics,
             num_update_per_episode=num_update_per_episode, target_return=target_return,
             progress=progress, max_episode_steps=max_episode_steps, num_envs=num_envs,
             vectorization=vectorization).best_path


def run(model, *, env_id=None, env=None, test_env=None, tracer=None, buffer=None,
        max_episodes=1000, test_interval=10, num_test_episodes=10,
        max_training_steps=10000, save_every_n_epochs=1, num_simulations=50,
        k_steps=10, buffer_warm_up=128, num_trajectory=32, sample_per_trajectory=10,
        name=None, tensorboard_dir=None, model_save_path=None, save_name=None,
        random_seed=42, temperature_fn=None, log_all_metrics=False,
        num_update_per_episode=50, target_return=None, progress=True,
        max_episode_steps=None, num_envs=1, vectorization="auto") -> FitResult:
  """`fit` with the full record of the run (see `FitResult`)."""
  _check_counts(max_episodes=max_episodes, test_interval=test_interval,
                num_test_episodes=num_test_episodes,
                max_training_steps=max_training_steps,
                save_every_n_epochs=save_every_n_epochs,
                num_simulations=num_simulations, k_steps=k_steps,
                num_trajectory=num_trajectory,
                sample_per_trajectory=sample_per_trajectory, num_envs=num_envs)
  _check_counts(allow_zero=True, buffer_warm_up=buffer_warm_up,
                num_update_per_episode=num_update_per_episode)
  if vectorization not in acting.VECTORIZATION_MODES:
    raise ValueError(f"vectorization must be one of {acting.VECTORIZATION_MODES}, "
                     f"got {vectorization!r}")
  env, test_env, env_name = _make_envs(env_id, env, test_env, num_envs, vectorization,
                                       max_episode_steps,
                                       num_test_envs=min(num_envs, num_test_episodes))
  tracer = PNStep(50, 0.997, 0.5) if tracer is None else tracer
  buffer = TrajectoryReplayBuffer(500, random_seed=random_seed) if buffer is None else buffer
  temperature_fn = default_temperature_fn if temperature_fn is None else temperature_fn
  name = name or f"{env_name}_{datetime.datetime.now():%Y%m%d-%H%M%S}"
  logdir = os.path.join(tensorboard_dir or "tensorboard", name)
  save_dir = model_save_path or os.path.join("models", name)
  loop = _Loop(model, env, test_env, tracer, buffer, random_seed, num_simulations,
               max_episode_steps, temperature_fn, max_training_steps)
  loop.ensure_initialised()
  from tensorboardX import SummaryWriter
  writer = SummaryWriter(logdir)
  bar = _progress_bar(progress, max_training_steps)
  best_return, best_path, tests = -np.inf, None, []
  try:
    bar.set_description("warm-up")
    for _ in range(buffer_warm_up):
      loop.collect()
    bar.set_description("training")
    for episode in range(1, max_episodes + 1):
      episode_out = loop.collect()
      metrics = loop.learn(num_update_per_episode, num_trajectory, sample_per_trajectory,
                           k_steps)
      _log_episode(writer, episode, episode_out, metrics, loop, log_all_metrics)
      if episode % save_every_n_epochs == 0:
        model.save(os.path.join(save_dir, "latest", save_name or "model_params"))
      done = loop.training_steps >= max_training_steps or episode == max_episodes
      test_return = None
      if episode % test_interval == 0 or done:
        test_return = loop.evaluate(num_test_episodes)
        tests.append(TestRecord(episode, loop.env_steps, loop.training_steps,
                                loop.elapsed(), test_return))
        writer.add_scalar("test/return", test_return, episode)
        if test_return >= best_return or best_path is None:
          best_return = test_return
          best_path = os.path.join(save_dir, f"epoch_{episode:04d}_test_{test_return:.1f}",
                                   save_name or "model_params")
          model.save(best_path)
        if target_return is not None and test_return >= target_return:
          done = True
      _update_bar(bar, loop, episode_out, metrics, test_return, best_return)
      if done:
        break
  finally:
    loop.close()
    writer.flush()
    writer.close()
    bar.close()
  return FitResult(best_path=best_path, best_test_return=float(best_return),
                   episodes=episode, env_steps=loop.env_steps,
                   training_steps=loop.training_steps, seconds=loop.elapsed(),
                   logdir=logdir, save_dir=save_dir, tests=tests)


class _Loop:
  """State of one `fit` run: keys, counters, and the act/learn/test steps.

  With a single environment, episodes are played one at a time and each
  learning call waits for its updates. With a vector environment, episodes
  come from a `VectorCollector`, each learning call is one fused dispatch,
  and acting searches with the parameters from before that dispatch, so the
  device learns while the host steps environments; metrics are read one
  call late. Both are deterministic for a given seed.
  """

  def __init__(self, model, env, test_env, tracer, buffer, seed, num_simulations,
               max_episode_steps, temperature_fn, max_training_steps):
    self.model, self.env, self.test_env = model, env, test_env
    self.tracer, self.buffer = tracer, buffer
    self.num_simulations = num_simulations
    self.max_episode_steps = max_episode_steps
    self.temperature_fn = temperature_fn
    self.max_training_steps = max_training_steps
    self.keys = acting.KeyStream(jax.random.PRNGKey(seed))
    # Every episode starts from its own seed; the sequence is fixed by `seed`.
    self.seeds = np.random.default_rng(seed)
    self.vectorized = isinstance(env, gym.vector.VectorEnv)
    self.collector = None
    self.pending_episodes = collections.deque()
    self.actor_params = None
    self.pending_metrics = None
    self.env_steps = 0
    self.training_steps = 0
    self.start = time.perf_counter()

  def ensure_initialised(self):
    if self.model.params is None:
      obs, _ = self.env.reset(seed=int(self.seeds.integers(2 ** 31)))
      obs = np.asarray(obs)
      self.model.init(self.keys(), obs[:1] if self.vectorized else obs[None])

  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  def temperature(self) -> float:
    return float(self.temperature_fn(max_training_steps=self.max_training_steps,
                                     training_steps=self.training_steps))

  def collect(self) -> acting.Episode:
    """Plays until an episode ends, stores it in replay and returns it."""
    if self.vectorized:
      episode = self._next_vector_episode()
    else:
      episode = acting.run_episode(
          self.model, self.env, self.keys, num_simulations=self.num_simulations,
          temperature=self.temperature(), seed=int(self.seeds.integers(2 ** 31)),
          tracer=self.tracer, max_episode_steps=self.max_episode_steps)
      self.env_steps += episode.length
    trajectory = episode.trajectory
    self.buffer.add(trajectory, float(np.mean(trajectory.batched_transitions.w)))
    return episode

  def _next_vector_episode(self) -> acting.Episode:
    if self.collector is None:
      self.collector = acting.VectorCollector(
          self.model, self.env, self.keys, num_simulations=self.num_simulations,
          tracer=self.tracer, seed=int(self.seeds.integers(2 ** 31)))
    while not self.pending_episodes:
      self.pending_episodes.extend(
          self.collector.step(self.temperature(), params=self.actor_params))
      self.env_steps = self.collector.env_steps
    return self.pending_episodes.popleft()

  def learn(self, num_updates, num_trajectory, sample_per_trajectory, k_steps) -> dict:
    """Runs up to `num_updates` updates; returns mean metrics (see class doc)."""
    num_updates = min(num_updates, self.max_training_steps - self.training_steps)
    if num_updates <= 0:
      return self.flush_metrics() if self.vectorized else {}
    batches = self.buffer.sample(num_trajectory=num_trajectory, k_steps=k_steps,
                                 sample_per_trajectory=sample_per_trajectory,
                                 num_batches=num_updates)
    if not self.vectorized:
      metrics = self.model._update_many_async(batches)
      self.training_steps += num_updates
      return mean_metrics(metrics)
    self.actor_params = self.model.params
    metrics = self.model._update_many_async(batches)
    self.training_steps += num_updates
    previous, self.pending_metrics = self.pending_metrics, metrics
    return mean_metrics(previous) if previous is not None else {}

  def flush_metrics(self) -> dict:
    metrics, self.pending_metrics = self.pending_metrics, None
    return mean_metrics(metrics) if metrics is not None else {}

  def evaluate(self, num_test_episodes) -> float:
    if isinstance(self.test_env, gym.vector.VectorEnv):
      returns = acting.run_vector_episodes(
          self.model, self.test_env, self.keys, num_test_episodes,
          num_simulations=self.num_simulations, temperature=0.,
          seed=int(self.seeds.integers(2 ** 31)))
      return float(np.mean(returns))
    return evaluate(self.model, self.test_env, self.keys(), self.num_simulations,
                    num_test_episodes, random_seed=int(self.seeds.integers(2 ** 31)),
                    max_episode_steps=self.max_episode_steps)

  def close(self):
    for env in (self.env, self.test_env):
      if isinstance(env, gym.vector.VectorEnv):
        env.close()


def _make_envs(env_id, env, test_env, num_envs=1, vectorization="auto",
               max_episode_steps=None, num_test_envs=1):
  """Training and test environments; vector ones when `num_envs > 1`.

  `env` may be an environment, a function making one, or a vector
  environment. With `env_id` and `num_envs > 1`, the default test
  environment is a vector one of `num_test_envs` sub-environments.
  """
  if (env_id is None) == (env is None):
    raise ValueError("give exactly one of env_id and env, got "
                     f"env_id={env_id!r} and env={env!r}")
  if env_id is not None:
    env_fn, name = functools.partial(gym.make, env_id), env_id
  else:
    if test_env is None:
      raise ValueError("a custom env needs a separate test_env for evaluation")
    env_fn, name = _custom_env(env, num_envs)
  try:
    if env_fn is not None:
      env = (acting.make_vector_env(env_fn, num_envs, mode=vectorization,
                                    max_episode_steps=max_episode_steps)
             if num_envs > 1 else env_fn())
    if test_env is None:
      test_env = (acting.make_vector_env(env_fn, num_test_envs, mode="sync",
                                         max_episode_steps=max_episode_steps)
                  if num_envs > 1 and num_test_envs > 1 else env_fn())
  except gym.error.Error as e:
    raise ValueError(f"cannot make environment env_id={env_id!r}: {e}") from e
  for what, e in (("env", env), ("test_env", test_env)):
    if isinstance(e, gym.vector.VectorEnv):
      acting.check_vector_env(e)
    else:
      acting.check_env(e, what)
  if name is None:
    spec = getattr(env, "spec", None)
    name = getattr(spec, "id", None) or (
        type(env.unwrapped).__name__ if isinstance(env, gym.Env) else "env")
  return env, test_env, name


def _custom_env(env, num_envs):
  """`(factory or None, run name or None)` for a user's `env` argument."""
  if isinstance(env, gym.vector.VectorEnv):
    if num_envs not in (1, env.num_envs):
      raise ValueError(f"num_envs={num_envs}, but the vector env has {env.num_envs} "
                       "sub-environments")
    return None, None
  if isinstance(env, gym.Env):
    if num_envs > 1:
      raise ValueError(
          f"num_envs={num_envs} needs a function that makes the environment (e.g. "
          "env=lambda: MyEnv()), not an environment instance")
    return None, None
  if callable(env):
    name = getattr(env, "__name__", "")
    return env, (name if name.isidentifier() else None)
  raise TypeError("env must be a gymnasium Env, a function making one, or a vector env; "
                  f"got {type(env).__name__}")


def _check_counts(allow_zero=False, **values):
  low = 0 if allow_zero else 1
  for name, value in values.items():
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
      kind = "a non-negative" if allow_zero else "a positive"
      raise ValueError(f"{name} must be {kind} integer, got {name}={value!r}")


def _log_episode(writer, episode, episode_out, metrics, loop, log_all):
  writer.add_scalar("train/episode_return", episode_out.episode_return, episode)
  writer.add_scalar("train/episode_length", episode_out.length, episode)
  writer.add_scalar("train/training_step", loop.training_steps, episode)
  writer.add_scalar("train/env_steps", loop.env_steps, episode)
  writer.add_scalar("train/wall_clock", loop.elapsed(), episode)
  writer.add_scalar("train/env_steps_per_s", loop.env_steps / max(loop.elapsed(), 1e-9),
                    episode)
  writer.add_scalar("train/temperature", loop.temperature(), episode)
  keys = metrics.keys() if log_all else ("loss", "value", "n_step_return")
  for key in keys:
    if key in metrics:
      writer.add_scalar(f"train/{key}", metrics[key], episode)


class _NoBar:
  def set_description(self, *_):
    pass

  def set_postfix(self, *_, **__):
    pass

  def update(self, *_):
    pass

  def close(self):
    pass


def _progress_bar(show, total):
  if not show:
    return _NoBar()
  from tqdm.auto import tqdm
  return tqdm(total=total, unit="upd", dynamic_ncols=True)


def _update_bar(bar, loop, episode_out, metrics, test_return, best_return):
  bar.update(loop.training_steps - getattr(bar, "n", loop.training_steps))
  postfix = {"ep_ret": f"{episode_out.episode_return:.0f}",
             "best_test": f"{best_return:.0f}" if np.isfinite(best_return) else "-",
             "loss": f"{metrics.get('loss', float('nan')):.3f}",
             "steps/s": f"{loop.env_steps / max(loop.elapsed(), 1e-9):.0f}",
             "time": _clock(loop.elapsed())}
  if test_return is not None:
    postfix["test"] = f"{test_return:.0f}"
  bar.set_postfix(postfix, refresh=False)


def _clock(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
