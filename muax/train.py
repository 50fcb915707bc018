"""`fit`: collect episodes, learn from replay, evaluate, log and checkpoint.

The loop wires the separate pieces together: acting (`muax.acting`) produces
trajectories, the replay buffer stores and samples them, `MuZero.update`
learns, `muax.test.test` evaluates. Each learning call samples all its batches
with one gather and runs them in one dispatch (`MuZero.update_many`); with N
environments the host goes on acting while the device learns.
"""
import collections
import contextlib
import dataclasses
import datetime
import functools
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

import gymnasium as gym
import jax
import numpy as np

from muax import acting
from muax import checkpoint
from muax import checks
from muax import games
from muax import run_state
from muax.episode_tracer import PNStep
from muax.loop.learning import PRIORITY
from muax.loop.learning import mean_metrics
from muax.replay_buffer import TrajectoryReplayBuffer
from muax.test import test as evaluate

__all__ = ["FitResult", "ResumeMismatch", "RunFolderInUse", "TrainingDiverged",
           "TrainingInterrupted", "default_temperature_fn", "fit", "run"]

RunFolderInUse = run_state.RunFolderInUse


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
        max_episode_steps=None, num_envs=1, vectorization="auto", resume=False,
        checkpoint_interval=60., keep_checkpoints=3,
        max_consecutive_skipped=200, opponent=None, reanalyze=None) -> str:
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
    random_seed: seeds keys, environment resets and replay sampling (a
      `buffer` made without `random_seed` is seeded with it).
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
    resume: continue the run saved in this run's folder (`model_save_path`,
      else `models/<name>`; without either, the newest `models/<env id>_*`
      run) from its newest run state: parameters, optimizer state, replay,
      random state, counters, test history and TensorBoard step. Starts a new
      run (with a note) when there is none. A path resumes that run folder.
    checkpoint_interval: seconds between run states written at episode
      boundaries to `<save dir>/run/` (0: after every episode); one is also
      written at the end, on Ctrl+C/SIGTERM and before an error propagates.
    keep_checkpoints: run states and best-so-far checkpoints kept (newest).
    max_consecutive_skipped: stop with `TrainingDiverged` after this many
      updates in a row with a non-finite loss or gradient (each is skipped).
    opponent: for two-player games (`MuZero(..., two_player=True)` and an
      env giving the self-play view, see `muax.games`): the greedy tests
      play against this policy, `opponent(obs, action_mask) -> action`,
      taking each side in turn (`muax.games.VersusOpponent`); the test return
      is then the mean score (+1 win, 0 draw, -1 loss). Without it a
      two-player model's tests play against itself.
    reanalyze: refresh the targets of part of each batch with a target
      network (`muax.Reanalyze`, or a fraction of each batch with its default
      settings); None keeps the model's setting (`model.set_reanalyze`).

  Prioritized replay: pass `buffer=muax.PrioritizedReplayBuffer(...)`;
  windows are then drawn by priority, weighted by their importance-sampling
  weights in the loss, and their priorities are refreshed from each update's
  value errors.

  A two-player model trains by self-play with a tracer built with
  `two_player=True` (the default tracer is then `PNStep(50, model.discount,
  0.5, two_player=True)`).

  Returns:
    the path of the best checkpoint by test return, for `model.load`.

  Raises:
    TrainingInterrupted: on Ctrl+C (SIGINT) or SIGTERM, after the current
      step and a saved run state; a `SystemExit` with code 130 or 143.
    TrainingDiverged: after `max_consecutive_skipped` non-finite updates.
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
             vectorization=vectorization, resume=resume,
             checkpoint_interval=checkpoint_interval, keep_checkpoints=keep_checkpoints,
             max_consecutive_skipped=max_consecutive_skipped, opponent=opponent,
             reanalyze=reanalyze).best_path


class TrainingInterrupted(SystemExit):
  """`fit` stopped on Ctrl+C (SIGINT) or SIGTERM after saving the run.

  A `SystemExit` with code 130 (SIGINT) or 143 (SIGTERM): a script exits
  quietly with that code; catch it to go on. `path` is the run state saved.
  """

  def __init__(self, signum: int, path: Optional[str], message: str):
    super().__init__(128 + int(signum))
    self.signum, self.path, self.message = int(signum), path, message

  def __str__(self):
    return self.message


class TrainingDiverged(RuntimeError):
  """Too many updates in a row had a non-finite loss or gradient."""


class ResumeMismatch(ValueError):
  """`resume` found a run of another environment, model or replay kind."""


def run(model, *, env_id=None, env=None, test_env=None, tracer=None, buffer=None,
        max_episodes=1000, test_interval=10, num_test_episodes=10,
        max_training_steps=10000, save_every_n_epochs=1, num_simulations=50,
        k_steps=10, buffer_warm_up=128, num_trajectory=32, sample_per_trajectory=10,
        name=None, tensorboard_dir=None, model_save_path=None, save_name=None,
        random_seed=42, temperature_fn=None, log_all_metrics=False,
        num_update_per_episode=50, target_return=None, progress=True,
        max_episode_steps=None, num_envs=1, vectorization="auto", resume=False,
        checkpoint_interval=60., keep_checkpoints=3,
        max_consecutive_skipped=200, opponent=None, reanalyze=None) -> FitResult:
  """`fit` with the full record of the run (see `FitResult`)."""
  _check_counts(max_episodes=max_episodes, test_interval=test_interval,
                num_test_episodes=num_test_episodes,
                max_training_steps=max_training_steps,
                save_every_n_epochs=save_every_n_epochs,
                num_simulations=num_simulations, k_steps=k_steps,
                num_trajectory=num_trajectory,
                sample_per_trajectory=sample_per_trajectory, num_envs=num_envs,
                keep_checkpoints=keep_checkpoints,
                max_consecutive_skipped=max_consecutive_skipped)
  _check_counts(allow_zero=True, buffer_warm_up=buffer_warm_up,
                num_update_per_episode=num_update_per_episode)
  _check_settings(vectorization, checkpoint_interval, target_return, resume)
  _check_run_arguments(env_id=env_id, test_env=test_env, tracer=tracer, buffer=buffer,
                       name=name, tensorboard_dir=tensorboard_dir,
                       model_save_path=model_save_path, save_name=save_name,
                       random_seed=random_seed, temperature_fn=temperature_fn,
                       log_all_metrics=log_all_metrics, progress=progress,
                       max_episode_steps=max_episode_steps)
  tracer = _check_two_player(model, tracer, opponent)
  if reanalyze is not None:
    model.set_reanalyze(reanalyze)
  if model.reanalyze is not None and not hasattr(tracer, "step_discount"):
    raise ValueError("reanalyze needs the tracer's n and per-step discount "
                     "(tracer.n, tracer.step_discount): use muax.NStep or muax.PNStep")
  env, test_env, env_name = _make_envs(
      env_id, env, test_env, num_envs, vectorization, max_episode_steps,
      num_test_envs=1 if opponent is not None else min(num_envs, num_test_episodes),
      model=model)
  if opponent is not None:
    if isinstance(test_env, gym.vector.VectorEnv):
      raise ValueError("opponent needs a single test_env (the self-play view of the "
                       "game), not a vector environment")
    test_env = games.VersusOpponent(test_env, opponent)
  if buffer is None:
    buffer = TrajectoryReplayBuffer(500, random_seed=random_seed)
  elif getattr(buffer, "random_seed", 0) is None:
    # A buffer made without a seed samples with `random_seed` too, so the run
    # repeats (a resumed run then restores the buffer's saved generator).
    buffer.seed(random_seed)
  temperature_fn = default_temperature_fn if temperature_fn is None else temperature_fn
  loop = _Loop(model, env, test_env, tracer, buffer, random_seed, num_simulations,
               max_episode_steps, temperature_fn, max_training_steps)
  with contextlib.ExitStack() as folder:
    folder.callback(_close_quietly, loop)
    name, save_dir, state_file = _run_folder(resume, name, model_save_path, env_name)
    folder.enter_context(run_state.locked(save_dir))
    spaces = acting.space_signature(env)
    name = _start_or_resume(loop, resume, name, save_dir, state_file, env_name, spaces)
    return _run_locked(loop, name, save_dir, dict(
        buffer_warm_up=buffer_warm_up, max_episodes=max_episodes,
        test_interval=test_interval, num_test_episodes=num_test_episodes,
        num_update_per_episode=num_update_per_episode, num_trajectory=num_trajectory,
        sample_per_trajectory=sample_per_trajectory, k_steps=k_steps,
        save_every_n_epochs=save_every_n_epochs, save_name=save_name or "model_params",
        save_dir=save_dir, log_all_metrics=log_all_metrics, target_return=target_return,
        checkpoint_interval=float(checkpoint_interval), keep=keep_checkpoints,
        max_consecutive_skipped=max_consecutive_skipped,
        config={"name": name, "env": env_name, "num_envs": num_envs,
                "random_seed": random_seed, **spaces}), tensorboard_dir, progress)


def _run_locked(loop, name, save_dir, settings, tensorboard_dir, progress) -> FitResult:
  """The run itself, once the run folder is locked and the loop restored."""
  logdir = os.path.join(tensorboard_dir or "tensorboard", name)
  settings = _Settings(**settings)
  from tensorboardX import SummaryWriter
  resumed = loop.last_state_path is not None
  writer = SummaryWriter(logdir, purge_step=loop.episode + 1 if resumed else None)
  bar = _progress_bar(progress, loop.max_training_steps, initial=loop.training_steps)
  signals = _StopSignals(lambda: loop.last_state_path)
  try:
    with signals:
      loop.stop = signals.requested
      _train(loop, settings, writer, bar)
      if signals.signum is not None and not _finished(loop, settings):
        _stop_on_signal(loop, settings, signals.signum)
  except (TrainingInterrupted, TrainingDiverged):
    raise
  except BaseException as e:
    # A second Ctrl+C means "stop at once": no more writing.
    at_once = isinstance(e, KeyboardInterrupt) and signals.signum is not None
    _save_before_raising(loop, settings, e, write=not at_once)
    raise
  finally:
    _close_quietly(loop, terminate=signals.forced)
    writer.flush()
    writer.close()
    bar.close()
  return FitResult(best_path=loop.best_path, best_test_return=float(loop.best_return),
                   episodes=loop.episode, env_steps=loop.env_steps,
                   training_steps=loop.training_steps, seconds=loop.elapsed(),
                   logdir=logdir, save_dir=save_dir,
                   tests=[TestRecord(**t) for t in loop.tests])


@dataclasses.dataclass(frozen=True)
class _Settings:
  """`fit`'s arguments that the episode loop reads."""
  buffer_warm_up: int
  max_episodes: int
  test_interval: int
  num_test_episodes: int
  num_update_per_episode: int
  num_trajectory: int
  sample_per_trajectory: int
  k_steps: int
  save_every_n_epochs: int
  save_name: str
  save_dir: str
  log_all_metrics: bool
  target_return: Optional[float]
  checkpoint_interval: float
  keep: int
  max_consecutive_skipped: int
  config: dict


def _train(loop, settings: "_Settings", writer, bar):
  """Warm-up, then episodes of collect / learn / log / test until done or stopped."""
  bar.set_description("warm-up")
  try:
    while loop.warmup_done < settings.buffer_warm_up and not loop.stop():
      loop.collect()
      loop.warmup_done += 1
      loop.mark_boundary()
      _maybe_write_state(loop, settings)
    bar.set_description("training")
    while not _finished(loop, settings) and not loop.stop():
      _train_episode(loop, settings, writer, bar)
      loop.mark_boundary()
      _maybe_write_state(loop, settings, force=_finished(loop, settings))
  except acting.Stopped:
    pass  # a stop request abandoned the episode; the run resumes from the boundary


def _train_episode(loop, settings, writer, bar):
  episode = loop.episode + 1
  episode_out = loop.collect()
  metrics = loop.learn(settings.num_update_per_episode, settings.num_trajectory,
                       settings.sample_per_trajectory, settings.k_steps)
  loop.episode = episode
  _log_episode(writer, episode, episode_out, metrics, loop, settings.log_all_metrics)
  if loop.skipped_in_a_row >= settings.max_consecutive_skipped:
    raise TrainingDiverged(_diverged_message(loop, settings))
  if episode % settings.save_every_n_epochs == 0:
    loop.model.save(os.path.join(settings.save_dir, "latest", settings.save_name))
  test_return = None
  if episode % settings.test_interval == 0 or _finished(loop, settings, tested=False):
    test_return = loop.evaluate(settings.num_test_episodes)
    if not np.isfinite(test_return):
      raise ValueError(f"the greedy test return is {test_return}: the test environment "
                       "returned non-finite rewards")
    loop.tests.append(dict(episode=episode, env_steps=loop.env_steps,
                           training_steps=loop.training_steps, seconds=loop.elapsed(),
                           test_return=test_return))
    writer.add_scalar("test/return", test_return, episode)
    if test_return >= loop.best_return or loop.best_path is None:
      loop.best_return = test_return
      folder = run_state.best_folder(episode, test_return, loop.taken_best)
      loop.best_path = os.path.join(settings.save_dir, folder, settings.save_name)
      loop.model.save(loop.best_path)
      loop.remember_best(settings.keep)
  _update_bar(bar, loop, episode_out, metrics, test_return, loop.best_return)


def _finished(loop, settings, tested=True) -> bool:
  """Whether the run is over: budget spent, or (after testing) the target reached."""
  if loop.training_steps >= loop.max_training_steps or loop.episode >= settings.max_episodes:
    return True
  return (tested and settings.target_return is not None and loop.best_path is not None
          and loop.best_return >= settings.target_return)


def _maybe_write_state(loop, settings, force=False):
  if force or loop.seconds_since_write() >= settings.checkpoint_interval:
    loop.write_state(settings)


def _stop_on_signal(loop, settings, signum):
  path = loop.write_state(settings) if loop.can_write_state() else loop.last_state_path
  name = signal.Signals(signum).name
  message = (f"muax: {name} received; stopped after {loop.episode} training episodes "
             f"({loop.training_steps} updates) and saved the run to {path}. Resume it "
             f"with fit(..., resume=True) and the same name/model_save_path "
             f"(muax train ... --resume).")
  print("\n" + message, file=sys.stderr, flush=True)
  raise TrainingInterrupted(signum, str(path), message)


def _save_before_raising(loop, settings, error, write=True):
  """Saves the last boundary when that state is consistent, and says so on `error`."""
  try:
    path = (loop.write_state(settings) if write and loop.can_write_state()
            else loop.last_state_path)
  except Exception as write_error:  # keep the original error in front
    error.add_note(f"muax: could not save the run state: {write_error}")
    return
  if path is not None:
    error.add_note(f"muax: the run state up to training episode "
                   f"{loop.saved_episode} is saved in {path}; fix the cause and "
                   "call fit(..., resume=True) with the same name to continue.")


def _diverged_message(loop, settings) -> str:
  where = (f"the last run state is {loop.last_state_path}" if loop.last_state_path
           else "no run state was saved yet")
  return (f"{loop.skipped_in_a_row} updates in a row had a non-finite loss or gradient "
          f"and were skipped (max_consecutive_skipped="
          f"{settings.max_consecutive_skipped}); the parameters are those of the last "
          f"finite update and {where}. Lower the learning rate or check the rewards, "
          "observations and loss, then resume with fit(..., resume=True).")


def _run_folder(resume, name, model_save_path, env_name):
  """`(name or None, save_dir, state file or None)` of the run `fit` is asked for.

  `resume=path` names a run folder or state file; `resume=True` without a
  name or save path finds the newest `models/<env>_*` run. A new run gets a
  timestamped name.
  """
  if resume not in (True, False, None):
    save_dir, state_file = run_state.locate(resume)
    return name, save_dir, state_file
  save_dir = model_save_path or (os.path.join("models", name) if name else None)
  if resume and save_dir is None:
    found = run_state.find_run_dir("models", _safe_name(env_name))
    save_dir = str(found) if found is not None else None
  if save_dir is None:
    name = f"{_safe_name(env_name)}_{datetime.datetime.now():%Y%m%d-%H%M%S}"
    save_dir = os.path.join("models", name)
  return name, save_dir, None


def _safe_name(env_name: str) -> str:
  return env_name.replace(os.sep, "_").replace("/", "_")


def _start_or_resume(loop, resume, name, save_dir, state_file, env_name, spaces) -> str:
  """Restores the run saved in `save_dir` or starts a new one there; returns
  the run's name. Called with the run folder locked.

  A new run in a folder that holds an earlier run's states first moves them
  (and `latest/`) aside, and never reuses the earlier run's best checkpoint
  names, so nothing saved is overwritten, pruned or resumed by mistake.
  """
  run_state.clean_temporary(save_dir)
  default_name = os.path.basename(os.path.normpath(save_dir))
  if resume:
    saved_name = _resume(loop, save_dir, env_name, spaces, state_file)
    if loop.last_state_path is not None:
      return name or saved_name or default_name
    print(f"muax: resume=True but no run state in {save_dir}; starting a new run",
          file=sys.stderr)
  moved = run_state.archive(save_dir)
  if moved:
    print(f"muax: {save_dir} held an earlier run's states; they were moved to "
          f"{', '.join(map(str, moved))} (pass resume=True to continue a run instead)",
          file=sys.stderr)
  loop.taken_best = run_state.best_folder_names(save_dir)
  loop.ensure_initialised()
  return name or default_name


def _resume(loop, save_dir, env_name, spaces, state_file=None) -> Optional[str]:
  """Restores the newest restorable (or the given) run state; returns its saved name.

  Damaged states are set aside (`*.bad`) and the next older one is tried; a
  state of another environment, model or replay kind is an error, not skipped.
  """
  files = [Path(state_file)] if state_file is not None else run_state.state_files(save_dir)
  errors = []
  for file in files:
    try:
      file, run, arrays, metadata = run_state.read_state(file)
      saved = run.get("config") if isinstance(run.get("config"), dict) else {}
      _check_same_run(loop, save_dir, saved, metadata, run, env_name, spaces)
      bounds = loop.buffer_bounds()
      loop.restore(file, run, arrays, save_dir)
    except checkpoint.UnreadableCheckpointError as e:
      if state_file is not None:
        raise
      run_state.set_aside(file, e)
      errors.append(e)
      continue
    if state_file is not None:
      moved = run_state.set_newer_aside(save_dir, file)
      if moved is not None:
        print(f"muax: resuming from an older state; the newer run states were moved to "
              f"{moved}", file=sys.stderr)
    if loop.buffer_bounds() != bounds:
      print(f"muax: the replay buffer keeps the saved run's bounds "
            f"(capacity, max_transitions, max_bytes) = {loop.buffer_bounds()}, not the "
            f"given {bounds}", file=sys.stderr)
    print(f"muax: resuming from {file} (after {loop.warmup_done} warm-up and "
          f"{loop.episode} training episodes, {loop.training_steps} updates)",
          file=sys.stderr)
    return saved.get("name")
  if errors:
    raise checkpoint.UnreadableCheckpointError(
        f"cannot resume: none of the {len(errors)} run states in "
        f"{Path(save_dir) / run_state.RUN_DIR} could be read (they are kept as *.bad). "
        f"The newest failed with: {errors[0]}. Pass resume=False to start a new run")
  return None


def _check_same_run(loop, save_dir, saved, metadata, run, env_name, spaces):
  """Raises ResumeMismatch unless the saved run was of this environment, model and
  replay kind (resuming it otherwise would silently change the run)."""
  if saved.get("env") not in (None, "env", env_name):  # "env": unnamed, before 0.1.1
    raise ResumeMismatch(f"cannot resume: the run in {save_dir} trained on "
                         f"{saved.get('env')!r}, this call trains on {env_name!r}")

  def refuse(setting, then, now):
    raise ResumeMismatch(f"cannot resume: the run in {save_dir} was trained with "
                         f"{setting}={then!r}, this call has {setting}={now!r}; pass the "
                         "same setting, or resume=False to start a new run")

  for key, now in spaces.items():
    if saved.get(key, now) != now:
      refuse(key, saved[key], now)
  model = loop.model
  for key, now in (("policy", model.policy), ("discount", model.discount),
                   ("two_player", model.two_player)):
    then = metadata.get(key, False if key == "two_player" else None)
    if then != now:
      refuse(key, then, now)
  prioritized = isinstance(run.get("buffer"), dict) and "prioritized" in run["buffer"]
  if prioritized != bool(getattr(loop.buffer, "prioritized", False)):
    kinds = {True: "a PrioritizedReplayBuffer", False: "a uniform TrajectoryReplayBuffer"}
    raise ResumeMismatch(f"cannot resume: the run in {save_dir} used "
                         f"{kinds[prioritized]}, this call passes {kinds[not prioritized]}; "
                         "pass the same kind")


def _damaged(file, error) -> checkpoint.UnreadableCheckpointError:
  return checkpoint.UnreadableCheckpointError(
      f"run state {file} is incomplete or damaged: {type(error).__name__}: {error}")


def _close_quietly(loop, terminate=False):
  # Closing must never hide the exception in flight (a broken worker pipe
  # after Ctrl+C, say).
  try:
    loop.close(terminate=terminate)
  except Exception as e:  # pylint: disable=broad-except
    print(f"muax: closing the environments failed: {type(e).__name__}: {e}",
          file=sys.stderr)


def _check_settings(vectorization, checkpoint_interval, target_return, resume):
  if vectorization not in acting.VECTORIZATION_MODES:
    raise ValueError(f"vectorization must be one of {acting.VECTORIZATION_MODES}, "
                     f"got {vectorization!r}")
  if isinstance(checkpoint_interval, bool) or not isinstance(
      checkpoint_interval, (int, float, np.number)) or not checkpoint_interval >= 0:
    raise ValueError("checkpoint_interval must be a number of seconds >= 0, got "
                     f"checkpoint_interval={checkpoint_interval!r}")
  if target_return is not None and (
      isinstance(target_return, bool) or not isinstance(target_return, (int, float, np.number))
      or np.isnan(target_return)):
    raise ValueError(f"target_return must be a number or None, got {target_return!r}")
  if not isinstance(resume, (bool, str, os.PathLike)) and resume is not None:
    raise TypeError("resume must be True, False or the path of a run folder, got "
                    f"{type(resume).__name__}")


def _check_run_arguments(*, env_id, test_env, tracer, buffer, name, tensorboard_dir,
                         model_save_path, save_name, random_seed, temperature_fn,
                         log_all_metrics, progress, max_episode_steps):
  """The checks of `fit`'s remaining arguments: each names the argument."""
  if env_id is not None and not isinstance(env_id, str):
    raise TypeError(f"env_id must be a registered gymnasium id such as 'CartPole-v1', "
                    f"got env_id={env_id!r}")
  if test_env is not None and not isinstance(test_env, (gym.Env, gym.vector.VectorEnv)):
    raise TypeError(f"test_env must be a gymnasium environment, got test_env={test_env!r}")
  for what, value, methods, kind in (
      ("tracer", tracer, ("reset", "add", "pop"), "an n-step tracer (muax.PNStep)"),
      ("buffer", buffer, ("add", "sample"), "a replay buffer (muax.TrajectoryReplayBuffer)")):
    if value is not None and not all(callable(getattr(value, m, None)) for m in methods):
      raise TypeError(f"{what} must be {kind} or None, got {what}={value!r}")
  for what, value in (("name", name), ("tensorboard_dir", tensorboard_dir),
                      ("model_save_path", model_save_path)):
    checks.path(what, value)
  if save_name is not None:
    checks.file_name("save_name", save_name)
  checks.seed("random_seed", random_seed)
  checks.function("temperature_fn", temperature_fn,
                  "fn(max_training_steps=, training_steps=) -> float")
  checks.flag("log_all_metrics", log_all_metrics)
  checks.flag("progress", progress)
  checks.positive_int("max_episode_steps", max_episode_steps, allow_none=True)


class _StopSignals:
  """SIGINT/SIGTERM set a flag the loop checks; a second one stops at once.

  The second signal interrupts whatever the run is waiting on (a hung
  environment worker too): SIGINT raises KeyboardInterrupt, SIGTERM
  `TrainingInterrupted` (exit code 143); `forced` is then True and the vector
  environments' workers are terminated instead of waited for. Installed only
  in the main thread (Python delivers signals there); elsewhere the default
  behaviour stays.
  """

  def __init__(self, saved_path: Callable[[], Optional[str]] = lambda: None):
    self.signum = None
    self.forced = False
    self._saved_path = saved_path
    self._previous = {}

  def requested(self) -> bool:
    return self.signum is not None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is signal.SIG_IGN:
          continue  # e.g. a background job: the signal stays ignored
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    return False

  def _handle(self, signum, frame):
    name = signal.Signals(signum).name
    if self.signum is not None:
      self.forced = True
      if signum == signal.SIGINT:
        raise KeyboardInterrupt
      path = self._saved_path()
      message = (f"muax: second {name}: stopped at once, without saving the current "
                 f"episode; the last saved run state is {path} (resume with "
                 "fit(..., resume=True))")
      os.write(2, f"\n{message}\n".encode())
      raise TrainingInterrupted(signum, path, message)
    self.signum = signum
    again = "Ctrl+C" if signum == signal.SIGINT else name
    # os.write, not print: the handler may run in the middle of a print to stderr.
    os.write(2, (f"\nmuax: {name} received: finishing the current step and saving the "
                 f"run ({again} again stops at once)\n").encode())


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
    self.warmup_done = 0
    self.episode = 0
    self.skipped_in_a_row = 0
    self.best_return, self.best_path, self.best_history = -np.inf, None, []
    self.tests = []
    self.stop = lambda: False
    self.start = time.perf_counter()
    self.boundary = None  # run_state.Boundary of the last episode boundary
    self.buffer_dirty = False  # replay changed since `boundary`
    self.last_state_path, self.saved_episode = None, None
    self._last_write, self._written = time.perf_counter(), None
    self.stale_best = []  # best checkpoints to delete once no run state lists them
    self.taken_best = []  # best-checkpoint folder names of earlier runs in the folder

  def ensure_initialised(self):
    if self.model.params is None:
      obs, _ = self.env.reset(seed=int(self.seeds.integers(2 ** 31)))
      obs = np.asarray(obs)
      self.model.init(self.keys(), obs[:1] if self.vectorized else obs[None])
    self.mark_boundary()

  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  # -- run state ------------------------------------------------------------

  def mark_boundary(self):
    """Snapshots the state between two episodes (cheap: arrays are shared)."""
    key, spare = self.keys.state()
    self.boundary = run_state.Boundary(
        warmup_done=self.warmup_done, episode=self.episode, env_steps=self.env_steps,
        training_steps=self.training_steps, seconds=self.elapsed(),
        skipped_in_a_row=self.skipped_in_a_row, train_state=self.model.train_state,
        key=key, spare_keys=spare,
        seeds_state=self.seeds.bit_generator.state, best_return=self.best_return,
        best_path=self.best_path, best_history=list(self.best_history),
        tests=list(self.tests), stale_best=list(self.stale_best),
        taken_best=list(self.taken_best))
    self.buffer_dirty = False

  def can_write_state(self) -> bool:
    """True when the last boundary is consistent and not yet on disk."""
    return (self.boundary is not None and not self.buffer_dirty
            and self.boundary is not self._written)

  def write_state(self, settings):
    """Writes the run state at the last boundary; returns its path."""
    path = run_state.write(settings.save_dir, self.boundary, self.model, self.buffer,
                           settings.config, keep=settings.keep)
    self.last_state_path, self.saved_episode = str(path), self.boundary.episode
    self._last_write, self._written = time.perf_counter(), self.boundary
    if self.stale_best:
      self.stale_best = run_state.prune_best(settings.save_dir, self.stale_best,
                                             self.best_path)
    return path

  def seconds_since_write(self) -> float:
    return time.perf_counter() - self._last_write

  def restore(self, file, run, arrays, save_dir):
    """Continues from a run state read by `run_state.read_state`.

    Everything is checked before the loop changes; the model and the buffer
    each change only when their part is valid.

    Raises:
      UnreadableCheckpointError: the state is damaged.
      CheckpointError: its networks do not fit the model.
    """
    try:
      loop = run_state.restore_loop_record(run, save_dir)
      keys = acting.KeyStream(None)
      keys.set_state(arrays["key"], arrays["spare_keys"])
      seeds = np.random.default_rng()
      seeds.bit_generator.state = loop["seeds_state"]
    except checkpoint.UnreadableCheckpointError:
      raise
    except (KeyError, ValueError, TypeError) as e:
      raise _damaged(file, e) from e
    # A model that does not fit raises CheckpointError (every state is alike,
    # none is set aside); a damaged state raises UnreadableCheckpointError.
    self.model.load(file)
    try:
      self.model.restore_train_state(
          run_state.saved_train_state(arrays, self.model.train_state))
    except (KeyError, ValueError, TypeError) as e:
      raise _damaged(file, e) from e
    buffer_arrays = {k[len("buffer."):]: v for k, v in arrays.items()
                     if k.startswith("buffer.")}
    try:
      self.buffer.restore(run["buffer"], buffer_arrays)
    except (KeyError, ValueError, TypeError) as e:
      raise _damaged(file, e) from e
    self.keys, self.seeds = keys, seeds
    for name in ("warmup_done", "episode", "env_steps", "training_steps",
                 "skipped_in_a_row"):
      setattr(self, name, int(loop[name]))
    self.start = time.perf_counter() - float(loop["seconds"])
    best = loop["best_return"]
    self.best_return = -np.inf if best is None else float(best)
    self.best_path, self.best_history = loop["best_path"], list(loop["best_history"])
    self.stale_best, self.taken_best = list(loop["stale_best"]), list(loop["taken_best"])
    self.tests = list(loop["tests"])
    self.mark_boundary()
    self.last_state_path, self.saved_episode = str(file), self.episode
    self._written = self.boundary

  def buffer_bounds(self):
    return tuple(getattr(self.buffer, name, None)
                 for name in ("capacity", "max_transitions", "max_bytes"))

  def remember_best(self, keep: int):
    """Records `best_path`; older best checkpoints beyond `keep` become stale.

    A stale one is deleted at a later write, once no run state on disk lists
    it, so a resumed run (even one falling back to an older state) never
    points at a deleted best checkpoint.
    """
    self.best_history.append(self.best_path)
    while len(self.best_history) > keep:
      self.stale_best.append(self.best_history.pop(0))

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
          tracer=self.tracer, max_episode_steps=self.max_episode_steps, stop=self.stop)
      self.env_steps += episode.length
    trajectory = episode.trajectory
    self.buffer_dirty = True
    self.buffer.add(trajectory, float(np.mean(trajectory.batched_transitions.w)))
    return episode

  def _next_vector_episode(self) -> acting.Episode:
    if self.collector is None:
      self.collector = acting.Actor(
          self.model, self.env, self.keys, num_simulations=self.num_simulations,
          tracer=self.tracer, seed=int(self.seeds.integers(2 ** 31)))
    while not self.pending_episodes:
      if self.stop():
        raise acting.Stopped()
      self.pending_episodes.extend(
          self.collector.step(self.temperature(), params=self.actor_params))
      self.env_steps += self.collector.num_envs  # the collector restarts on resume
    return self.pending_episodes.popleft()

  def learn(self, num_updates, num_trajectory, sample_per_trajectory, k_steps) -> dict:
    """Runs up to `num_updates` updates; returns mean metrics (see class doc).

    With a prioritized buffer, the value errors of each update become the
    priorities of the windows it learned from (read with the metrics).
    """
    num_updates = min(num_updates, self.max_training_steps - self.training_steps)
    self.buffer_dirty = True  # sampling advances the buffer's generator
    if num_updates <= 0:
      return self.flush_metrics() if self.vectorized else {}
    options = dict(num_trajectory=num_trajectory, k_steps=k_steps,
                   sample_per_trajectory=sample_per_trajectory, num_batches=num_updates)
    if self.model.reanalyze is not None:
      options["bootstrap"] = (self.tracer.n, self.tracer.step_discount)
    ids = None
    if getattr(self.buffer, "prioritized", False):
      batches, ids = self.buffer.sample(return_ids=True, **options)
    else:
      batches = self.buffer.sample(**options)
    if not self.vectorized:
      metrics = self.model.update_many_async(batches)
      self.training_steps += num_updates
      return self._host_metrics((metrics, ids))
    self.actor_params = self.model.params
    metrics = self.model.update_many_async(batches)
    self.training_steps += num_updates
    previous, self.pending_metrics = self.pending_metrics, (metrics, ids)
    return self._host_metrics(previous) if previous is not None else {}

  def flush_metrics(self) -> dict:
    metrics, self.pending_metrics = self.pending_metrics, None
    return self._host_metrics(metrics) if metrics is not None else {}

  def _host_metrics(self, metrics_and_ids) -> dict:
    """Mean metrics; counts the updates skipped in a row (non-finite) and
    writes the new priorities of a prioritized buffer."""
    metrics, ids = metrics_and_ids
    metrics = jax.device_get(metrics)
    skipped = np.asarray(metrics.get("skipped", ()), bool).reshape(-1)
    if skipped.size:
      finite = np.flatnonzero(~skipped)
      trailing = skipped.size if finite.size == 0 else skipped.size - 1 - finite[-1]
      self.skipped_in_a_row = (self.skipped_in_a_row + trailing if finite.size == 0
                               else trailing)
    if ids is not None and PRIORITY in metrics:
      priorities = np.asarray(metrics[PRIORITY], np.float64)
      ok = np.isfinite(priorities)  # a skipped update leaves its windows' priorities
      self.buffer.update_priorities(ids[ok], priorities[ok])
    return mean_metrics(metrics)

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

  def close(self, terminate: bool = False):
    """Closes the vector environments; `terminate` kills their worker
    processes instead of waiting for them (a hung worker, a forced stop)."""
    for env in (self.env, self.test_env):
      if isinstance(env, gym.vector.AsyncVectorEnv):
        env.close(terminate=terminate)
      elif isinstance(env, gym.vector.VectorEnv):
        env.close()


def _check_two_player(model, tracer, opponent):
  """The tracer to use (a default one when None), checked against the model."""
  two_player = bool(getattr(model, "two_player", False))
  if opponent is not None and not two_player:
    raise ValueError("opponent is for two-player games: build the model with "
                     "MuZero(..., two_player=True)")
  if opponent is not None and not callable(opponent):
    raise TypeError("opponent must be a function opponent(obs, action_mask) -> action, "
                    f"got {opponent!r}")
  if tracer is None:
    return (PNStep(50, model.discount, 0.5, two_player=True) if two_player
            else PNStep(50, 0.997, 0.5))
  if bool(getattr(tracer, "two_player", False)) != two_player:
    if two_player:
      raise ValueError("the model is two_player=True but the tracer is not: build it with "
                       "two_player=True (e.g. muax.PNStep(n, gamma, two_player=True)) so "
                       "that returns alternate sign between the players")
    raise ValueError("the tracer is two_player=True but the model is not: build the "
                     "model with MuZero(..., two_player=True)")
  return tracer


def _make_envs(env_id, env, test_env, num_envs=1, vectorization="auto",
               max_episode_steps=None, num_test_envs=1, model=None):
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
                                    max_episode_steps=max_episode_steps, model=model)
             if num_envs > 1 else env_fn())
    if test_env is None:
      test_env = (acting.make_vector_env(env_fn, num_test_envs, mode="sync",
                                         max_episode_steps=max_episode_steps, model=model)
                  if num_envs > 1 and num_test_envs > 1 else env_fn())
  except gym.error.Error as e:  # its own type, which scripts catch
    raise _with_context(e, f"cannot make environment env_id={env_id!r}") from e
  for what, e in (("env", env), ("test_env", test_env)):
    if isinstance(e, gym.vector.VectorEnv):
      acting.check_vector_env(e, model)
    else:
      acting.check_env(e, what, model)
  return env, test_env, name or acting.env_name(env)


def _with_context(error: Exception, context: str) -> Exception:
  """`error` with a message that starts with `context`, still of its own type
  (scripts catch gymnasium.error.DeprecatedEnv) and a ValueError too (as muax
  raised before)."""
  try:
    return _env_error_type(type(error))(f"{context}: {error}")
  except Exception:  # pylint: disable=broad-except  (an unusual constructor)
    error.add_note(context)
    return error


@functools.lru_cache(maxsize=None)
def _env_error_type(kind: type) -> type:
  if issubclass(kind, ValueError):
    return kind
  return type(kind.__name__, (kind, ValueError), {"__module__": __name__})


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
  for name, value in values.items():
    checks.positive_int(name, value, allow_zero=allow_zero)


def _log_episode(writer, episode, episode_out, metrics, loop, log_all):
  writer.add_scalar("train/episode_return", episode_out.episode_return, episode)
  writer.add_scalar("train/episode_length", episode_out.length, episode)
  writer.add_scalar("train/training_step", loop.training_steps, episode)
  writer.add_scalar("train/env_steps", loop.env_steps, episode)
  writer.add_scalar("train/wall_clock", loop.elapsed(), episode)
  writer.add_scalar("train/env_steps_per_s", loop.env_steps / max(loop.elapsed(), 1e-9),
                    episode)
  writer.add_scalar("train/temperature", loop.temperature(), episode)
  if "skipped" in metrics:
    writer.add_scalar("train/skipped_updates", metrics["skipped"], episode)
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


def _progress_bar(show, total, initial=0):
  if not show:
    return _NoBar()
  from tqdm.auto import tqdm
  return tqdm(total=total, initial=initial, unit="upd", dynamic_ncols=True)


def _update_bar(bar, loop, episode_out, metrics, test_return, best_return):
  bar.update(loop.training_steps - getattr(bar, "n", loop.training_steps))
  postfix = {"ep_ret": f"{episode_out.episode_return:.0f}",
             "best_test": f"{best_return:.0f}" if np.isfinite(best_return) else "-",
             "loss": f"{metrics.get('loss', float('nan')):.3f}",
             "steps/s": f"{loop.env_steps / max(loop.elapsed(), 1e-9):.0f}",
             "time": _clock(loop.elapsed())}
  if test_return is not None:
    postfix["test"] = f"{test_return:.0f}"
  if loop.skipped_in_a_row:
    postfix["skipped"] = str(loop.skipped_in_a_row)
  bar.set_postfix(postfix, refresh=False)


def _clock(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
