"""`Checkpointer`: a `fit` run's folder, its run states and its best checkpoints.

A run state is taken at every episode boundary (`mark`, cheap) and written
(`write`, atomic) every `checkpoint_interval` seconds, at the end and on a
stop; `start_or_resume` opens a run folder: it restores the newest readable
state of the same run, or moves an earlier run's states aside and starts a
new one. The best checkpoints are kept here too: a run state lists them, so
an old one is deleted only once no state on disk refers to it.
"""
import datetime
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import numpy as np

from muax import acting
from muax import checkpoint
from muax import run_state
from muax.loop.errors import ResumeMismatch
from muax.loop.host import HostLoop

__all__ = ["Checkpointer", "run_folder"]


class Checkpointer:
  """Writes and restores the run states of one run folder.

  Args:
    save_dir: the run folder (`models/<name>`).
    record: the run's description saved in every state (`config` in it).
    keep: the newest run states and best checkpoints kept.
    interval: seconds between two writes of a run state.
    save_name: the file name of the best checkpoints.
  """

  def __init__(self, save_dir: str, record: dict, *, keep: int, interval: float,
               save_name: str):
    self.save_dir, self.record = save_dir, record
    self.keep, self.interval, self.save_name = keep, interval, save_name
    self.boundary = None  # run_state.Boundary of the last episode boundary
    self.last_state_path, self.saved_episode = None, None
    self._last_write, self._written = time.perf_counter(), None
    self.best_return, self.best_path, self.best_history = -np.inf, None, []
    self.stale_best = []  # best checkpoints to delete once no run state lists them
    self.taken_best = []  # best-checkpoint folder names of earlier runs in the folder

  # -- run states -------------------------------------------------------------

  def mark(self, loop: HostLoop) -> None:
    """Snapshots the state between two episodes."""
    self.boundary = run_state.Boundary(
        **loop.snapshot(), best_return=self.best_return, best_path=self.best_path,
        best_history=list(self.best_history), stale_best=list(self.stale_best),
        taken_best=list(self.taken_best))

  def can_write(self, loop: HostLoop) -> bool:
    """True when the last boundary is consistent and not yet on disk."""
    return (self.boundary is not None and not loop.changed
            and self.boundary is not self._written)

  def due(self) -> bool:
    return time.perf_counter() - self._last_write >= self.interval

  def write(self, loop: HostLoop) -> Path:
    """Writes the run state at the last boundary; returns its path."""
    path = run_state.write(self.save_dir, self.boundary, loop.model, loop.buffer,
                           self.record, keep=self.keep)
    self.last_state_path, self.saved_episode = str(path), self.boundary.episode
    self._last_write, self._written = time.perf_counter(), self.boundary
    if self.stale_best:
      self.stale_best = run_state.prune_best(self.save_dir, self.stale_best,
                                             self.best_path)
    return path

  def restore(self, loop: HostLoop, file: Union[str, os.PathLike], run: dict, arrays: dict) -> None:
    """Continues `loop` from a run state read by `run_state.read_state`.

    Everything is checked before the loop changes; the model and the buffer
    each change only when their part is valid.

    Raises:
      UnreadableCheckpointError: the state is damaged.
      CheckpointError: its networks do not fit the model.
    """
    try:
      record = run_state.restore_loop_record(run, self.save_dir)
      keys = acting.KeyStream(None)
      keys.set_state(arrays["key"], arrays["spare_keys"])
      seeds = np.random.default_rng()
      seeds.bit_generator.state = record["seeds_state"]
    except checkpoint.UnreadableCheckpointError:
      raise
    except (KeyError, ValueError, TypeError) as e:
      raise _damaged(file, e) from e
    # A model that does not fit raises CheckpointError (every state is alike,
    # none is set aside); a damaged state raises UnreadableCheckpointError.
    loop.model.load(file)
    try:
      loop.model.restore_train_state(
          run_state.saved_train_state(arrays, loop.model.train_state))
    except (KeyError, ValueError, TypeError) as e:
      raise _damaged(file, e) from e
    buffer_arrays = {k[len("buffer."):]: v for k, v in arrays.items()
                     if k.startswith("buffer.")}
    try:
      loop.buffer.restore(run["buffer"], buffer_arrays)
    except (KeyError, ValueError, TypeError) as e:
      raise _damaged(file, e) from e
    loop.resume_from(record, keys, seeds)
    best = record["best_return"]
    self.best_return = -np.inf if best is None else float(best)
    self.best_path, self.best_history = record["best_path"], list(record["best_history"])
    self.stale_best, self.taken_best = list(record["stale_best"]), list(record["taken_best"])
    self.mark(loop)
    self.last_state_path, self.saved_episode = str(file), loop.episode
    self._written = self.boundary

  # -- best checkpoints -------------------------------------------------------

  def save_best(self, model: Any, episode: int, test_return: float) -> bool:
    """Saves `model` as the best checkpoint when `test_return` is the best so
    far (or none was saved); returns whether it did.

    Older best checkpoints beyond `keep` become stale: one is deleted at a
    later write, once no run state on disk lists it, so a resumed run (even
    one falling back to an older state) never points at a deleted one.
    """
    if test_return < self.best_return and self.best_path is not None:
      return False
    self.best_return = test_return
    folder = run_state.best_folder(episode, test_return, self.taken_best)
    self.best_path = os.path.join(self.save_dir, folder, self.save_name)
    model.save(self.best_path)
    self.best_history.append(self.best_path)
    while len(self.best_history) > self.keep:
      self.stale_best.append(self.best_history.pop(0))
    return True

  # -- opening the run folder ---------------------------------------------

  def start_or_resume(self, loop: HostLoop, resume: Union[bool, str, os.PathLike, None],
                      name: Optional[str], state_file: Optional[Path], env_name: str,
                      spaces: dict) -> str:
    """Restores the run saved in the folder or starts a new one there; returns
    the run's name. Called with the run folder locked.

    A new run in a folder that holds an earlier run's states first moves them
    (and `latest/`) aside, and never reuses the earlier run's best checkpoint
    names, so nothing saved is overwritten, pruned or resumed by mistake.
    """
    save_dir = self.save_dir
    run_state.clean_temporary(save_dir)
    default_name = os.path.basename(os.path.normpath(save_dir))
    if resume:
      saved_name = self._resume(loop, env_name, spaces, state_file)
      if self.last_state_path is not None:
        return name or saved_name or default_name
      print(f"muax: resume=True but no run state in {save_dir}; starting a new run",
            file=sys.stderr)
    moved = run_state.archive(save_dir)
    if moved:
      print(f"muax: {save_dir} held an earlier run's states; they were moved to "
            f"{', '.join(map(str, moved))} (pass resume=True to continue a run instead)",
            file=sys.stderr)
    self.taken_best = run_state.best_folder_names(save_dir)
    loop.ensure_initialised()
    self.mark(loop)
    return name or default_name

  def _resume(self, loop, env_name, spaces, state_file=None) -> Optional[str]:
    """Restores the newest restorable (or the given) run state; returns its
    saved name.

    Damaged states are set aside (`*.bad`) and the next older one is tried; a
    state of another environment, model or replay kind is an error, not skipped.
    """
    save_dir = self.save_dir
    files = ([Path(state_file)] if state_file is not None
             else run_state.state_files(save_dir))
    errors = []
    for file in files:
      try:
        file, run, arrays, metadata = run_state.read_state(file)
        saved = run.get("config") if isinstance(run.get("config"), dict) else {}
        _check_same_run(loop, save_dir, saved, metadata, run, env_name, spaces)
        bounds = _buffer_bounds(loop.buffer)
        self.restore(loop, file, run, arrays)
      except checkpoint.UnreadableCheckpointError as e:
        if state_file is not None:
          raise
        run_state.set_aside(file, e)
        errors.append(e)
        continue
      if state_file is not None:
        moved = run_state.set_newer_aside(save_dir, file)
        if moved is not None:
          print(f"muax: resuming from an older state; the newer run states were moved "
                f"to {moved}", file=sys.stderr)
      if _buffer_bounds(loop.buffer) != bounds:
        print(f"muax: the replay buffer keeps the saved run's bounds "
              f"(capacity, max_transitions, max_bytes) = {_buffer_bounds(loop.buffer)}, "
              f"not the given {bounds}", file=sys.stderr)
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


def run_folder(resume: Union[bool, str, os.PathLike, None], name: Optional[str],
               model_save_path: Optional[Union[str, os.PathLike]], env_name: str
               ) -> Tuple[Optional[str], Union[str, os.PathLike], Optional[Path]]:
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


def _buffer_bounds(buffer) -> tuple:
  return tuple(getattr(buffer, name, None)
               for name in ("capacity", "max_transitions", "max_bytes"))


def _damaged(file, error) -> checkpoint.UnreadableCheckpointError:
  return checkpoint.UnreadableCheckpointError(
      f"run state {file} is incomplete or damaged: {type(error).__name__}: {error}")
