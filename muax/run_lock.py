"""The run folder's lock: one `fit` at a time trains in a folder
(re-exported by `muax.run_state`)."""
import contextlib
import datetime
import json
import os
import socket
import sys
from pathlib import Path
from typing import Iterator, Union

try:
  import fcntl
except ImportError:  # Windows
  fcntl = None
  import msvcrt

__all__ = ["LOCK_FILE", "RunFolderInUse", "locked"]

LOCK_FILE = ".muax-lock"


class RunFolderInUse(RuntimeError):
  """Another process is training in this run folder."""


@contextlib.contextmanager
def locked(save_dir: Union[str, os.PathLike]) -> Iterator[None]:
  """Holds the run folder's lock file for the block: one `fit` at a time.

  The lock is an OS file lock on `<save_dir>/.muax-lock`, which holds the
  owner's pid, host and start time; the OS drops it when its process ends in
  any way (a SIGKILL too), so a lock left by a dead run is never stale. (A
  process forked without exec from the run shares the lock while it lives.)

  Raises:
    RunFolderInUse: another process (or another `fit` in this one) holds it.
  """
  folder = Path(save_dir)
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / LOCK_FILE
  fd = _acquire(path, folder)
  try:
    owner = {"pid": os.getpid(), "host": socket.gethostname(),
             "started": datetime.datetime.now().isoformat(timespec="seconds"),
             "command": " ".join(sys.argv)[:500]}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(owner).encode())
    yield
  finally:
    try:
      os.unlink(path)  # while still locked: a waiting process then makes its own
    except OSError:
      pass
    os.close(fd)


def _acquire(path: Path, folder: Path) -> int:
  for _ in range(100):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if not _try_lock(fd):
      os.close(fd)
      raise RunFolderInUse(
          f"{folder} is in use by another muax run ({_owner(path)}): two runs writing "
          "one folder would overwrite each other's checkpoints. Wait for it to finish "
          "or stop it, or give this run another name or model_save_path")
    try:
      if os.path.samestat(os.fstat(fd), os.stat(path)):
        return fd
    except FileNotFoundError:
      pass  # its last owner removed it after we opened it: try again
    os.close(fd)
  raise RunFolderInUse(f"could not lock {path}: it keeps being replaced")


def _try_lock(fd: int) -> bool:
  try:
    if fcntl is not None:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # a byte far past the owner record, which stays readable
      os.lseek(fd, 1 << 20, os.SEEK_SET)
      msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
      os.lseek(fd, 0, os.SEEK_SET)
    return True
  except OSError:
    return False


def _owner(path: Path) -> str:
  try:
    owner = json.loads(path.read_text())
    return (f"pid {owner['pid']} on {owner['host']}, since {owner['started']}: "
            f"{owner.get('command', '')}")
  except (OSError, ValueError, KeyError, TypeError):
    return "owner unknown"
