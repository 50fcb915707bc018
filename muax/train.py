"""`fit`: collect episodes, learn from replay, evaluate, log and checkpoint.

`run` is a short schedule over the loop's pieces (`muax.loop`): a frozen
`FitConfig` built once from the arguments, a `HostLoop` that acts (an
`acting.Actor`), stores in replay, learns (`MuZero.update_many`, one dispatch
per learning call; with N environments the host goes on acting while the
device learns) and evaluates (`loop.evaluation.evaluate`), and a
`Checkpointer` that owns the run folder, its run states and best checkpoints.
"""
import contextlib
import dataclasses
import inspect
import os
import signal
import sys
from typing import Any, Callable, List, Optional, Union

import gymnasium as gym
import numpy as np

from muax import acting
from muax import games
from muax import run_state
from muax.loop import environments
from muax.loop import progress as show
from muax.loop.checkpointing import Checkpointer
from muax.loop.checkpointing import run_folder
from muax.loop.config import COMPONENTS
from muax.loop.config import FitConfig
from muax.loop.config import check_components
from muax.loop.config import default_temperature_fn
from muax.loop.errors import ResumeMismatch
from muax.loop.errors import TrainingDiverged
from muax.loop.errors import TrainingInterrupted
from muax.loop.host import HostLoop
from muax.loop.signals import StopSignals
from muax.replay_buffer import TrajectoryReplayBuffer

__all__ = ["FitResult", "ResumeMismatch", "RunFolderInUse", "TrainingDiverged",
           "TrainingInterrupted", "default_temperature_fn", "fit", "run"]

RunFolderInUse = run_state.RunFolderInUse


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


def fit(model: Any, env_id: Optional[str] = None,
        env: Optional[Union[gym.Env, gym.vector.VectorEnv, Callable[[], gym.Env]]] = None,
        test_env: Optional[Union[gym.Env, gym.vector.VectorEnv]] = None,
        tracer: Any = None, buffer: Any = None, max_episodes: int = 1000,
        test_interval: int = 10, num_test_episodes: int = 10,
        max_training_steps: int = 10000, save_every_n_epochs: int = 1,
        num_simulations: int = 50, k_steps: int = 10, buffer_warm_up: int = 128,
        num_trajectory: int = 32, sample_per_trajectory: int = 10,
        name: Optional[str] = None,
        tensorboard_dir: Optional[Union[str, os.PathLike]] = None,
        model_save_path: Optional[Union[str, os.PathLike]] = None,
        save_name: Optional[str] = None, random_seed: int = 42,
        temperature_fn: Optional[Callable[..., float]] = None,
        log_all_metrics: bool = False, num_update_per_episode: int = 50, *,
        target_return: Optional[float] = None, progress: bool = True,
        max_episode_steps: Optional[int] = None, num_envs: int = 1,
        vectorization: str = "auto", resume: Union[bool, str, os.PathLike, None] = False,
        checkpoint_interval: float = 60., keep_checkpoints: int = 3,
        max_consecutive_skipped: int = 200, opponent: Optional[Callable] = None,
        reanalyze: Any = None) -> str:
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
  arguments = dict(locals())
  return run(**arguments).best_path


_FIT = inspect.signature(fit)


def run(model: Any, **options: Any) -> FitResult:
  """`fit` with the full record of the run (see `FitResult`).

  Takes `fit`'s arguments, by keyword after `model`.
  """
  bound = _FIT.bind(model, **options)
  bound.apply_defaults()
  arguments = bound.arguments
  config = FitConfig.from_arguments(
      **{k: v for k, v in arguments.items() if k not in COMPONENTS})
  env_id, env, test_env = arguments["env_id"], arguments["env"], arguments["test_env"]
  tracer, buffer = arguments["tracer"], arguments["buffer"]
  opponent, reanalyze = arguments["opponent"], arguments["reanalyze"]
  check_components(env_id=env_id, test_env=test_env, tracer=tracer, buffer=buffer)
  tracer = environments.tracer_for(model, tracer, opponent)
  if reanalyze is not None:
    model.set_reanalyze(reanalyze)
  if model.reanalyze is not None and not hasattr(tracer, "step_discount"):
    raise ValueError("reanalyze needs the tracer's n and per-step discount "
                     "(tracer.n, tracer.step_discount): use muax.NStep or muax.PNStep")
  num_envs = config.num_envs
  env, test_env, env_name = environments.make_envs(
      env_id, env, test_env, num_envs, config.vectorization, config.max_episode_steps,
      num_test_envs=1 if opponent is not None else min(num_envs, config.num_test_episodes),
      model=model)
  if opponent is not None:
    if isinstance(test_env, gym.vector.VectorEnv):
      raise ValueError("opponent needs a single test_env (the self-play view of the "
                       "game), not a vector environment")
    test_env = games.VersusOpponent(test_env, opponent)
  if buffer is None:
    buffer = TrajectoryReplayBuffer(500, random_seed=config.random_seed)
  elif getattr(buffer, "random_seed", 0) is None:
    # A buffer made without a seed samples with `random_seed` too, so the run
    # repeats (a resumed run then restores the buffer's saved generator).
    buffer.seed(config.random_seed)
  loop = HostLoop(model, env, test_env, tracer, buffer, config)
  with contextlib.ExitStack() as folder:
    folder.callback(_close_quietly, loop)
    name, save_dir, state_file = run_folder(config.resume, config.name,
                                            config.model_save_path, env_name)
    folder.enter_context(run_state.locked(save_dir))
    spaces = acting.space_signature(env)
    record = {"name": name, "env": env_name, "num_envs": num_envs,
              "random_seed": config.random_seed, **spaces}
    checkpoints = Checkpointer(save_dir, record, keep=config.keep_checkpoints,
                               interval=config.checkpoint_interval,
                               save_name=config.save_name)
    name = checkpoints.start_or_resume(loop, config.resume, name, state_file, env_name,
                                       spaces)
    checkpoints.record = dict(record, name=name)
    return _run_locked(loop, checkpoints, name)


run.__signature__ = _FIT.replace(
    parameters=[p if p.name == "model" else p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                for p in _FIT.parameters.values()],
    return_annotation=FitResult)


def _run_locked(loop: HostLoop, checkpoints: Checkpointer, name: str) -> FitResult:
  """The run itself, once the run folder is locked and the loop restored."""
  config = loop.config
  logdir = os.path.join(config.tensorboard_dir or "tensorboard", name)
  from tensorboardX import SummaryWriter
  resumed = checkpoints.last_state_path is not None
  writer = SummaryWriter(logdir, purge_step=loop.episode + 1 if resumed else None)
  bar = show.progress_bar(config.progress, config.max_training_steps,
                          initial=loop.training_steps)
  signals = StopSignals(lambda: checkpoints.last_state_path)
  try:
    with signals:
      loop.stop = signals.requested
      _train(loop, checkpoints, writer, bar)
      if signals.signum is not None and not _finished(loop, checkpoints):
        _stop_on_signal(loop, checkpoints, signals.signum)
  except (TrainingInterrupted, TrainingDiverged):
    raise
  except BaseException as e:
    # A second Ctrl+C means "stop at once": no more writing.
    at_once = isinstance(e, KeyboardInterrupt) and signals.signum is not None
    _save_before_raising(loop, checkpoints, e, write=not at_once)
    raise
  finally:
    _close_quietly(loop, terminate=signals.forced)
    writer.flush()
    writer.close()
    bar.close()
  return FitResult(best_path=checkpoints.best_path,
                   best_test_return=float(checkpoints.best_return),
                   episodes=loop.episode, env_steps=loop.env_steps,
                   training_steps=loop.training_steps, seconds=loop.elapsed(),
                   logdir=logdir, save_dir=checkpoints.save_dir,
                   tests=[TestRecord(**t) for t in loop.tests])


def _train(loop: HostLoop, checkpoints: Checkpointer, writer, bar):
  """Warm-up, then episodes of collect / learn / log / test until done or stopped."""
  bar.set_description("warm-up")
  try:
    while loop.warmup_done < loop.config.buffer_warm_up and not loop.stop():
      loop.collect()
      loop.warmup_done += 1
      checkpoints.mark(loop)
      _maybe_write_state(loop, checkpoints)
    bar.set_description("training")
    while not _finished(loop, checkpoints) and not loop.stop():
      _train_episode(loop, checkpoints, writer, bar)
      checkpoints.mark(loop)
      _maybe_write_state(loop, checkpoints, force=_finished(loop, checkpoints))
  except acting.Stopped:
    pass  # a stop request abandoned the episode; the run resumes from the boundary


def _train_episode(loop: HostLoop, checkpoints: Checkpointer, writer, bar):
  config = loop.config
  episode = loop.episode + 1
  episode_out = loop.collect()
  metrics = loop.learn()
  loop.episode = episode
  show.log_episode(writer, episode, episode_out, metrics, loop, config.log_all_metrics)
  if loop.skipped_in_a_row >= config.max_consecutive_skipped:
    raise TrainingDiverged(_diverged_message(loop, checkpoints))
  if episode % config.save_every_n_epochs == 0:
    loop.model.save(os.path.join(checkpoints.save_dir, "latest", config.save_name))
  test_return = None
  if episode % config.test_interval == 0 or _finished(loop, checkpoints, tested=False):
    test_return = loop.evaluate()
    if not np.isfinite(test_return):
      raise ValueError(f"the greedy test return is {test_return}: the test environment "
                       "returned non-finite rewards")
    loop.tests.append(dict(episode=episode, env_steps=loop.env_steps,
                           training_steps=loop.training_steps, seconds=loop.elapsed(),
                           test_return=test_return))
    writer.add_scalar("test/return", test_return, episode)
    checkpoints.save_best(loop.model, episode, test_return)
  show.update_bar(bar, loop, episode_out, metrics, test_return, checkpoints.best_return)


def _finished(loop: HostLoop, checkpoints: Checkpointer, tested: bool = True) -> bool:
  """Whether the run is over: budget spent, or (after testing) the target reached."""
  config = loop.config
  if (loop.training_steps >= config.max_training_steps
      or loop.episode >= config.max_episodes):
    return True
  return (tested and config.target_return is not None
          and checkpoints.best_path is not None
          and checkpoints.best_return >= config.target_return)


def _maybe_write_state(loop, checkpoints, force=False):
  if force or checkpoints.due():
    checkpoints.write(loop)


def _stop_on_signal(loop, checkpoints, signum):
  path = (checkpoints.write(loop) if checkpoints.can_write(loop)
          else checkpoints.last_state_path)
  name = signal.Signals(signum).name
  message = (f"muax: {name} received; stopped after {loop.episode} training episodes "
             f"({loop.training_steps} updates) and saved the run to {path}. Resume it "
             f"with fit(..., resume=True) and the same name/model_save_path "
             f"(muax train ... --resume).")
  print("\n" + message, file=sys.stderr, flush=True)
  raise TrainingInterrupted(signum, str(path), message)


def _save_before_raising(loop, checkpoints, error, write=True):
  """Saves the last boundary when that state is consistent, and says so on `error`."""
  try:
    path = (checkpoints.write(loop) if write and checkpoints.can_write(loop)
            else checkpoints.last_state_path)
  except Exception as write_error:  # keep the original error in front
    error.add_note(f"muax: could not save the run state: {write_error}")
    return
  if path is not None:
    error.add_note(f"muax: the run state up to training episode "
                   f"{checkpoints.saved_episode} is saved in {path}; fix the cause and "
                   "call fit(..., resume=True) with the same name to continue.")


def _diverged_message(loop, checkpoints) -> str:
  where = (f"the last run state is {checkpoints.last_state_path}"
           if checkpoints.last_state_path else "no run state was saved yet")
  return (f"{loop.skipped_in_a_row} updates in a row had a non-finite loss or gradient "
          f"and were skipped (max_consecutive_skipped="
          f"{loop.config.max_consecutive_skipped}); the parameters are those of the last "
          f"finite update and {where}. Lower the learning rate or check the rewards, "
          "observations and loss, then resume with fit(..., resume=True).")


def _close_quietly(loop, terminate=False):
  # Closing must never hide the exception in flight (a broken worker pipe
  # after Ctrl+C, say).
  try:
    loop.close(terminate=terminate)
  except Exception as e:  # pylint: disable=broad-except
    print(f"muax: closing the environments failed: {type(e).__name__}: {e}",
          file=sys.stderr)
