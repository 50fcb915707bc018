"""Checkpoints of a whole `fit` run, so an interrupted run continues exactly.

A run checkpoint is a model checkpoint (`muax.checkpoint`) that also holds
what the training loop needs to go on as if it had never stopped: the replay
buffer's contents and random state, the loop's key stream and seed generator,
the step and episode counters, the evaluation history and best return. It is
taken at episode boundaries: `Boundary` is a cheap snapshot (immutable
parameter arrays are shared, not copied) that `write` turns into a file.

Files are `<save_dir>/run/state_<episodes collected>.npz`, written atomically;
the newest `keep` are kept, and `latest` skips unreadable ones, so a crash
while writing never loses the previous good state.
"""
import dataclasses
import datetime
import os
import re
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

from muax import checkpoint

__all__ = ["Boundary", "RUN_DIR", "archive", "find_run_dir", "latest", "locate", "read_state",
           "write"]

RUN_DIR = "run"
_PATTERN = re.compile(r"^state_(\d+)\.npz$")


@dataclasses.dataclass
class Boundary:
  """The loop's state between two episodes (see `_Loop.boundary`)."""
  warmup_done: int
  episode: int
  env_steps: int
  training_steps: int
  seconds: float
  skipped_in_a_row: int
  params: object
  opt_state: object
  key: np.ndarray  # [2] uint32: the key stream's next key
  spare_keys: np.ndarray  # [n, 2] uint32: keys split but not yet handed out
  seeds_state: dict  # numpy Generator state of the episode seeds
  best_return: float
  best_path: Optional[str]
  best_history: List[str]
  tests: List[dict]

  @property
  def collected(self) -> int:
    """Episodes collected so far, warm-up included."""
    return self.warmup_done + self.episode


def write(save_dir, boundary: Boundary, model, buffer, config: dict, *,
          keep: int) -> Path:
  """Writes the run state at `boundary` and prunes to the newest `keep` files.

  The buffer must not have changed since `boundary` was taken.
  """
  run = {"loop": _loop_record(boundary), "config": config}
  arrays = {"key": boundary.key, "spare_keys": boundary.spare_keys}
  buffer_meta, buffer_arrays = buffer.state()
  run["buffer"] = buffer_meta
  arrays.update({f"buffer.{k}": v for k, v in buffer_arrays.items()})
  path = Path(save_dir) / RUN_DIR / f"state_{boundary.collected:07d}.npz"
  checkpoint.save(path, boundary.params, boundary.opt_state, model.checkpoint_metadata(),
                  run=run, arrays=arrays)
  _prune(path.parent, keep)
  return path


def latest(save_dir):
  """`(file, run, arrays)` of the newest readable run state, or None.

  Unreadable files (a crash while the disk was failing, a truncated copy) are
  renamed to `*.bad` with a warning on stderr, and older good states are used
  instead. A state written by a newer muax is an error, not skipped.
  """
  for file in reversed(_state_files(Path(save_dir) / RUN_DIR)):
    try:
      found = read_state(file)
    except checkpoint.NewerVersionError:
      raise
    except checkpoint.CheckpointError as e:
      bad = file.with_name(file.name + ".bad")
      os.replace(file, bad)
      print(f"muax: skipping unreadable run state {file} (renamed to {bad.name}): {e}",
            file=sys.stderr)
      continue
    return found
  return None


def read_state(file):
  """`(file, run, arrays)` of one run state file; CheckpointError if it is none."""
  _, _, _, run, arrays = checkpoint.read(file, run_arrays=True)
  if not isinstance(run, dict):
    raise checkpoint.CheckpointError(f"{file} is a model checkpoint, not a run state")
  return Path(file), run, arrays


def locate(path):
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


def archive(save_dir) -> Optional[Path]:
  """Moves an earlier run's states aside before a new run; returns where, or None."""
  folder = Path(save_dir) / RUN_DIR
  if not folder.is_dir() or not any(folder.iterdir()):
    return None
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  target = folder.with_name(f"{RUN_DIR}-{stamp}")
  suffix = 1
  while target.exists():
    target = folder.with_name(f"{RUN_DIR}-{stamp}-{suffix}")
    suffix += 1
  os.replace(folder, target)
  return target


def find_run_dir(root, env_name: str) -> Optional[Path]:
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


def restore_loop_record(run: dict) -> dict:
  """The loop counters and history saved by `write`, checked."""
  loop = run.get("loop")
  needed = ("warmup_done", "episode", "env_steps", "training_steps", "seconds",
            "skipped_in_a_row", "seeds_state", "best_return", "best_path",
            "best_history", "tests")
  if not isinstance(loop, dict) or any(k not in loop for k in needed):
    raise checkpoint.CheckpointError("run state has no complete loop record")
  return loop


def _loop_record(b: Boundary) -> dict:
  best = b.best_return if np.isfinite(b.best_return) else None
  return {"warmup_done": b.warmup_done, "episode": b.episode, "env_steps": b.env_steps,
          "training_steps": b.training_steps, "seconds": b.seconds,
          "skipped_in_a_row": b.skipped_in_a_row, "seeds_state": b.seeds_state,
          "best_return": best, "best_path": b.best_path,
          "best_history": list(b.best_history), "tests": list(b.tests)}


def _state_files(folder: Path) -> List[Path]:
  if not folder.is_dir():
    return []
  files = [f for f in folder.iterdir() if _PATTERN.match(f.name)]
  return sorted(files, key=lambda f: int(_PATTERN.match(f.name).group(1)))


def _prune(folder: Path, keep: int):
  stale = _state_files(folder)[:-keep]
  # Temporary files of writes that a crash cut short (one writer at a time).
  stale += [f for f in folder.iterdir() if f.name.startswith(".state_")
            and f.name.endswith(".tmp")]
  for file in stale:
    try:
      os.unlink(file)
    except OSError:
      pass
