"""Checkpoints of a whole `fit` run, so an interrupted run continues exactly.

A run checkpoint is a model checkpoint (`muax.checkpoint`) that also holds
what the training loop needs to go on as if it had never stopped: the replay
buffer's contents and random state, the loop's key stream and seed generator,
the step and episode counters, the evaluation history and best return. It is
taken at episode boundaries: `Boundary` is a cheap snapshot (immutable
parameter arrays are shared, not copied) that `write` turns into a file.

Files are `<save_dir>/run/state_<episodes collected>.npz`, written atomically;
the newest `keep` are kept, and a resumed run skips unreadable ones, so a
crash while writing never loses the previous good state.

The run folder holds the run states, the best checkpoints
(`epoch_<episode>_test_<return>/`) and `latest/`. Rules that keep a user's
saved work: one process at a time trains in a folder (`locked`); a new run
moves an earlier run's states and `latest/` aside (`archive`) and never
reuses the name of a best checkpoint already there (`best_folder`); a best
checkpoint is deleted only once no kept run state refers to it
(`prune_best`), so falling back to an older state never finds its best
checkpoint gone. Best checkpoints are recorded relative to the run folder,
so a run folder can be moved and resumed elsewhere.
"""
import dataclasses
import datetime
import os
import re
import sys
from pathlib import Path
from typing import Any, Collection, List, Optional, Tuple, Union

import jax
import numpy as np

from muax import checkpoint
from muax.core.types import TrainState
from muax.run_lock import LOCK_FILE
from muax.run_lock import RunFolderInUse
from muax.run_lock import locked

# The run folder's lock (`muax.run_lock`) is re-exported: callers find it here.
__all__ = ["Boundary", "LOCK_FILE", "RUN_DIR", "RunFolderInUse", "archive", "best_folder",
           "best_folder_names", "clean_temporary", "find_run_dir", "locate", "locked",
           "move_aside", "prune_best", "read_state", "saved_train_state", "set_aside", "set_newer_aside",
           "state_files", "write"]

RUN_DIR = "run"
LATEST_DIR = "latest"
_PATTERN = re.compile(r"^state_(\d+)\.npz$")
_BEST = re.compile(r"^epoch_\d+_test_")
_TARGET = "train.target."  # + leaf index: the target network's parameters


@dataclasses.dataclass
class Boundary:
  """The loop's state between two episodes (`loop.checkpointing.Checkpointer.mark`)."""
  warmup_done: int
  episode: int
  env_steps: int
  training_steps: int
  seconds: float
  skipped_in_a_row: int
  train_state: TrainState  # params, optimizer state, target network, counter, key
  key: np.ndarray  # [2] uint32: the key stream's next key
  spare_keys: np.ndarray  # [n, 2] uint32: keys split but not yet handed out
  seeds_state: dict  # numpy Generator state of the episode seeds
  best_return: float
  best_path: Optional[str]
  best_history: List[str]
  tests: List[dict]
  stale_best: List[str] = dataclasses.field(default_factory=list)  # to delete, once free
  taken_best: List[str] = dataclasses.field(default_factory=list)  # earlier runs' folders

  @property
  def collected(self) -> int:
    """Episodes collected so far, warm-up included."""
    return self.warmup_done + self.episode


def write(save_dir: Union[str, os.PathLike], boundary: Boundary, model: Any, buffer: Any,
          config: dict, *, keep: int) -> Path:
  """Writes the run state at `boundary` and prunes to the newest `keep` files.

  The buffer must not have changed since `boundary` was taken.
  """
  run = {"loop": _loop_record(boundary), "config": config}
  arrays = {"key": boundary.key, "spare_keys": boundary.spare_keys}
  arrays.update(_train_state_arrays(boundary.train_state))
  buffer_meta, buffer_arrays = buffer.state()
  run["buffer"] = buffer_meta
  arrays.update({f"buffer.{k}": v for k, v in buffer_arrays.items()})
  path = Path(save_dir) / RUN_DIR / f"state_{boundary.collected:07d}.npz"
  state = boundary.train_state
  checkpoint.save(path, state.params, state.opt_state, model.checkpoint_metadata(),
                  run=run, arrays=arrays)
  _prune(path, keep)
  return path


def saved_train_state(arrays: dict, fresh: TrainState) -> TrainState:
  """`fresh` (the model's state after loading a run state's parameters and
  optimizer state) with the saved update counter, key and target network.

  A state written before these were saved (release 0.1.0) gives `fresh`. A
  target network is used when the model has one (reanalysis on).

  Raises:
    ValueError: the saved fields have the wrong shape or dtype.
  """
  if "train.count" not in arrays:
    return fresh
  count, key = np.asarray(arrays["train.count"]), np.asarray(arrays["train.key"])
  if count.shape != () or count.dtype.kind not in "iu" or key.shape != np.shape(fresh.key) \
      or key.dtype != np.uint32:
    raise ValueError(f"the saved update counter {count.dtype}{list(count.shape)} or key "
                     f"{key.dtype}{list(key.shape)} is not a scalar integer and a "
                     f"uint32{list(np.shape(fresh.key))} key")
  target = fresh.target_params
  names = sorted((k for k in arrays if k.startswith(_TARGET)), key=lambda k: int(k[len(_TARGET):]))
  if target is not None and names:
    leaves, treedef = jax.tree_util.tree_flatten(fresh.params)
    saved = [arrays[k] for k in names]
    if len(saved) != len(leaves) or any(np.shape(x) != np.shape(y) or
                                        np.asarray(x).dtype != np.asarray(y).dtype
                                        for x, y in zip(saved, leaves)):
      raise ValueError("the saved target network does not fit the parameters")
    target = jax.tree_util.tree_unflatten(treedef, saved)
  return fresh.replace(count=count.astype(np.int32), key=key, target_params=target)


def state_files(save_dir: Union[str, os.PathLike]) -> List[Path]:
  """The run state files of a run folder, newest first."""
  return list(reversed(_state_files(Path(save_dir) / RUN_DIR)))


def set_aside(file: Path, error: Exception) -> None:
  """Renames an unreadable run state to `*.bad` (kept, never used again)."""
  bad = file.with_name(file.name + ".bad")
  os.replace(file, bad)
  print(f"muax: skipping unreadable run state {file} (renamed to {bad.name}): {error}",
        file=sys.stderr)


def read_state(file: Union[str, os.PathLike]) -> Tuple[Path, dict, dict, dict]:
  """`(file, run, arrays, metadata)` of one run state file.

  Raises:
    UnreadableCheckpointError: the file is damaged, or a model checkpoint.
  """
  _, _, metadata, run, arrays = checkpoint.read(file, run_arrays=True)
  if not isinstance(run, dict):
    raise checkpoint.UnreadableCheckpointError(
        f"{file} is a model checkpoint, not a run state")
  return Path(file), run, arrays, metadata


def locate(path: Union[str, os.PathLike]) -> Tuple[str, Optional[Path]]:
  """`(save_dir, state file or None)` for `resume=path`: a run folder, its `run/`
  folder, or one state file in it."""
  path = Path(path)
  if path.is_file():
    if path.parent.name != RUN_DIR:
      raise ValueError(f"resume={str(path)!r} is not a run state (those are "
                       f"<save dir>/{RUN_DIR}/state_*.npz)")
    return str(path.parent.parent), path
  if path.is_dir() and path.name == RUN_DIR and _state_files(path):
    return str(path.parent), None
  if path.is_dir() and _state_files(path / RUN_DIR):
    return str(path), None
  raise ValueError(f"resume={str(path)!r}: no muax run state there (expected a run "
                   f"folder holding {RUN_DIR}/state_*.npz)")


def set_newer_aside(save_dir: Union[str, os.PathLike],
                    file: Union[str, os.PathLike]) -> Optional[Path]:
  """Moves the run states newer than `file` (resumed from on request) to
  `run-<time>/`, so pruning never deletes them; returns where, or None."""
  number = int(_PATTERN.match(Path(file).name).group(1))
  newer = [f for f in state_files(save_dir) if int(_PATTERN.match(f.name).group(1)) > number]
  if not newer:
    return None
  target = _free_names([Path(save_dir) / RUN_DIR])[0]
  target.mkdir()
  for f in newer:
    os.replace(f, target / f.name)
  return target


def archive(save_dir: Union[str, os.PathLike]) -> List[Path]:
  """Moves an earlier run's states and `latest/` aside before a new run.

  They become `run-<time>/` and `latest-<time>/`; best checkpoints stay where
  they are (the paths an earlier `fit` returned keep working). Returns where
  the folders went.
  """
  return move_aside([Path(save_dir) / name for name in (RUN_DIR, LATEST_DIR)])


def move_aside(paths: Collection[Union[str, os.PathLike]]) -> List[Path]:
  """Renames those of `paths` that exist (files, or folders that are not
  empty) to `<name>-<time><suffix>` beside them, one time stamp for all, no
  existing name reused; returns the new paths."""
  paths = [Path(p) for p in paths]
  paths = [p for p in paths if p.is_file() or (p.is_dir() and any(p.iterdir()))]
  targets = _free_names(paths)
  for path, target in zip(paths, targets):
    os.replace(path, target)
  return targets


def _free_names(paths: List[Path]) -> List[Path]:
  """`<stem>-<time><suffix>` siblings of `paths`, one stamp for all, none existing yet."""
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  tag, number = stamp, 1
  named = lambda p, t: p.with_name(f"{p.stem}-{t}{p.suffix}")  # noqa: E731
  while any(named(p, tag).exists() for p in paths):
    tag, number = f"{stamp}-{number}", number + 1
  return [named(p, tag) for p in paths]


def clean_temporary(save_dir: Union[str, os.PathLike]) -> None:
  """Removes the temporary files of checkpoint writes a crash cut short.

  Only under the folder's lock: no other writer can be mid-write.
  """
  save_dir = Path(save_dir)
  if not save_dir.is_dir():
    return
  folders = [save_dir / RUN_DIR, save_dir / LATEST_DIR]
  folders += [d for d in save_dir.iterdir() if _BEST.match(d.name)]
  for folder in folders:
    if folder.is_dir():
      for file in folder.iterdir():
        if checkpoint.is_temporary(file.name):
          _unlink(file)


def best_folder_names(save_dir: Union[str, os.PathLike]) -> List[str]:
  """Names of the best-checkpoint folders in a run folder."""
  save_dir = Path(save_dir)
  if not save_dir.is_dir():
    return []
  return sorted(d.name for d in save_dir.iterdir() if d.is_dir() and _BEST.match(d.name))


def best_folder(episode: int, test_return: float, taken: Collection[str]) -> str:
  """The folder name of a best checkpoint: `epoch_<episode>_test_<return>`,
  with a suffix when an earlier run's folder has that name."""
  base = f"epoch_{episode:04d}_test_{test_return:.1f}"
  name, suffix = base, 2
  while name in taken:
    name, suffix = f"{base}-{suffix}", suffix + 1
  return name


def prune_best(save_dir: Union[str, os.PathLike], candidates: List[str],
               keep_path: Optional[str]) -> List[str]:
  """Deletes the best checkpoints in `candidates` that no run state on disk
  refers to; returns those still referred to (to try again later).

  Nothing is deleted while some run state cannot be read: its references
  are unknown.
  """
  referenced = _referenced_best(save_dir)
  if referenced is None:
    return list(candidates)
  remaining = []
  for path in candidates:
    if path == keep_path:
      continue
    if _relative(path) in referenced:
      remaining.append(path)
      continue
    try:
      _unlink(checkpoint.resolve(path))
      os.rmdir(os.path.dirname(path))
    except (OSError, checkpoint.CheckpointError):
      pass
  return remaining


def _referenced_best(save_dir):
  referenced = set()
  for file in _state_files(Path(save_dir) / RUN_DIR):
    try:
      loop = checkpoint.read_manifest(file)["run"]["loop"]
      paths = [loop["best_path"]] + list(loop["best_history"])
    except (checkpoint.CheckpointError, OSError, KeyError, TypeError):
      return None
    referenced.update(_relative(p) for p in paths if isinstance(p, str))
  return referenced


def _relative(path: str) -> str:
  """`<best folder>/<save name>` of a best checkpoint's path."""
  return "/".join(Path(path).parts[-2:])


def _rebased(save_dir, path):
  """A recorded best checkpoint's path inside `save_dir` (where it is now)."""
  return None if path is None else os.path.join(save_dir, *Path(path).parts[-2:])


def find_run_dir(root: Union[str, os.PathLike], env_name: str) -> Optional[Path]:
  """The most recently written `root/<env_name>_<timestamp>` run holding run states."""
  root = Path(root)
  if not root.is_dir():
    return None
  pattern = re.compile(rf"^{re.escape(env_name)}_\d{{8}}-\d{{6}}$")
  candidates = []
  for child in root.iterdir():
    if child.is_dir() and pattern.match(child.name):
      files = _state_files(child / RUN_DIR)
      if files:
        candidates.append((files[-1].stat().st_mtime, child))
  return max(candidates)[1] if candidates else None


def restore_loop_record(run: dict, save_dir: Union[str, os.PathLike]) -> dict:
  """The loop counters and history saved by `write`, checked, with best
  checkpoint paths inside `save_dir`.

  Raises:
    UnreadableCheckpointError: the record is incomplete or damaged.
  """
  loop = run.get("loop")
  needed = {"warmup_done": int, "episode": int, "env_steps": int, "training_steps": int,
            "seconds": (int, float), "skipped_in_a_row": int, "seeds_state": dict,
            "best_return": (int, float, type(None)), "best_path": (str, type(None)),
            "best_history": list, "tests": list}
  if not isinstance(loop, dict) or any(
      not isinstance(loop.get(k), kind) or isinstance(loop.get(k), bool)
      for k, kind in needed.items()):
    raise checkpoint.UnreadableCheckpointError("run state has no complete loop record")
  paths = loop["best_history"] + loop.get("stale_best", []) + loop.get("taken_best", [])
  if not all(isinstance(p, str) for p in paths):
    raise checkpoint.UnreadableCheckpointError("run state has a damaged loop record")
  loop = dict(loop)
  loop["best_path"] = _rebased(save_dir, loop["best_path"])
  for name in ("best_history", "stale_best"):
    loop[name] = [_rebased(save_dir, p) for p in loop.get(name, [])]
  if "taken_best" not in loop:  # written before muax recorded them
    mine = {Path(p).parent.name for p in loop["best_history"] + [loop["best_path"] or ""]}
    loop["taken_best"] = [d for d in best_folder_names(save_dir) if d not in mine]
  return loop


def _loop_record(b: Boundary) -> dict:
  best = b.best_return if np.isfinite(b.best_return) else None
  return {"warmup_done": b.warmup_done, "episode": b.episode, "env_steps": b.env_steps,
          "training_steps": b.training_steps, "seconds": b.seconds,
          "skipped_in_a_row": b.skipped_in_a_row, "seeds_state": b.seeds_state,
          "best_return": best,
          "best_path": None if b.best_path is None else _relative(b.best_path),
          "best_history": [_relative(p) for p in b.best_history],
          "stale_best": [_relative(p) for p in b.stale_best],
          "taken_best": list(b.taken_best), "tests": list(b.tests)}


def _train_state_arrays(state: TrainState) -> dict:
  """The parts of a `TrainState` a model checkpoint does not hold."""
  arrays = {"train.count": np.asarray(state.count), "train.key": np.asarray(state.key)}
  if state.target_params is not None:
    for i, leaf in enumerate(jax.tree_util.tree_leaves(state.target_params)):
      arrays[f"{_TARGET}{i}"] = np.asarray(leaf)
  return arrays


def _state_files(folder: Path) -> List[Path]:
  if not folder.is_dir():
    return []
  files = [f for f in folder.iterdir() if _PATTERN.match(f.name)]
  return sorted(files, key=lambda f: int(_PATTERN.match(f.name).group(1)))


def _prune(written: Path, keep: int):
  """Deletes all but the newest `keep` run states (never `written`), and the
  temporary files of writes a crash cut short (one writer at a time)."""
  folder = written.parent
  stale = [f for f in _state_files(folder)[:-keep] if f != written]
  stale += [f for f in folder.iterdir() if checkpoint.is_temporary(f.name)]
  for file in stale:
    _unlink(file)


def _unlink(file):
  try:
    os.unlink(file)
  except OSError:
    pass
