"""Checkpoint files: a zip of plain arrays plus a JSON manifest; never pickle.

A checkpoint is a `.npz` archive. Entry `__muax__` holds a JSON manifest
(format name, version, muax version, the parameter key paths, metadata);
entries `p0..` are the parameter leaves and `o0..` the optimizer state leaves.
A run checkpoint (written by `fit` to resume training) is a model checkpoint
with the run's state added: a `run` section in the manifest and `run.*` arrays.

Reading never unpickles, so a file cannot run code when loaded. Every entry
is read to its end, so its zip CRC-32 is checked, and its size must be what
its header says: a damaged file is refused (`UnreadableCheckpointError`),
never returned altered. Writes go to a temporary file that is fsynced and
renamed over the target, so a crash leaves either the old or the new
checkpoint, never half of one.
"""
import contextlib
import json
import math
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Tuple, Union

import jax
import numpy as np

FORMAT = "muax-checkpoint"
VERSION = 1
SUFFIX = ".npz"
_MANIFEST = "__muax__"
_RUN_PREFIX = "run."
_LEGACY_SUFFIX = ".npy"
# `_write_atomic`'s temporary files: ".<target name>.<random>.tmp".
_TEMPORARY = re.compile(r"^\..+\.npz\.[a-z0-9_]+\.tmp$")
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_READ_CHUNK = 1 << 24


class CheckpointError(ValueError):
  """A checkpoint file is missing, corrupted, foreign or does not fit the model."""


class UnreadableCheckpointError(CheckpointError):
  """The file cannot be read as a muax checkpoint: damaged, truncated, altered,
  foreign or pickled. A resumed run skips such run states."""


class NewerVersionError(CheckpointError):
  """A checkpoint written by a newer muax, with a format this one cannot read."""


class LegacyCheckpointError(UnreadableCheckpointError):
  """A checkpoint of the old muax package (<= 0.0.2): a pickle, never loaded."""


def file_for(path: Union[str, os.PathLike]) -> Path:
  """The file `save(path)` writes: `path` itself if it ends in .npz."""
  path = Path(path)
  return path if path.suffix == SUFFIX else path.with_name(path.name + SUFFIX)


def resolve(path: Union[str, os.PathLike]) -> Path:
  """Finds the checkpoint file for a path given with or without a suffix.

  Raises:
    FileNotFoundError: nothing there.
    LegacyCheckpointError: only a checkpoint of the old muax package (a
      pickled `.npy` file) is there.
  """
  path = Path(path)
  candidates = [path, file_for(path)]
  if path.suffix and path.suffix != SUFFIX:
    candidates.append(path.with_suffix(SUFFIX))
  for candidate in candidates:
    if candidate.is_file():
      return candidate
  for legacy in (path.with_name(path.name + _LEGACY_SUFFIX), path.with_suffix(_LEGACY_SUFFIX)):
    if legacy.is_file():
      raise LegacyCheckpointError(_legacy_message(legacy, path))
  tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
  raise FileNotFoundError(f"no muax checkpoint at {str(path)!r} (tried: {tried})")


def is_temporary(name: str) -> bool:
  """Whether a file name is that of a checkpoint write a crash cut short."""
  return _TEMPORARY.match(name) is not None


def save(path: Union[str, os.PathLike], params: Any, opt_state: Any, metadata: dict, *,
         run: dict = None, arrays: dict = None) -> Path:
  """Atomically writes params, optimizer state and metadata; returns the file.

  `run` (JSON-serialisable) and `arrays` (named numeric arrays) add the state of
  a training run to a model checkpoint; `load` ignores them, `read` returns them.
  """
  param_paths, param_leaves = _flatten_params(params)
  opt_leaves = jax.tree_util.tree_leaves(opt_state)
  manifest = {"format": FORMAT, "version": VERSION, "param_paths": param_paths,
              "num_opt_leaves": len(opt_leaves), "metadata": metadata}
  entries = {f"p{i}": np.asarray(x) for i, x in enumerate(param_leaves)}
  entries.update({f"o{i}": np.asarray(x) for i, x in enumerate(opt_leaves)})
  if run is not None:
    manifest["run"] = run
    for name, value in (arrays or {}).items():
      value = np.asarray(value)
      if value.dtype.hasobject:
        raise TypeError(f"checkpoint array {name!r} holds Python objects; only numeric "
                        "arrays are saved")
      entries[_RUN_PREFIX + name] = value
  return _write_atomic(file_for(path), manifest, entries)


def load(path: Union[str, os.PathLike]) -> Tuple[dict, List[np.ndarray], dict]:
  """Reads a checkpoint.

  Returns:
    `(params, opt_leaves, metadata)`: params as nested dicts of numpy arrays,
    the optimizer state leaves in tree order, and the saved metadata.

  Raises:
    FileNotFoundError: no file at the path (with or without suffix).
    CheckpointError: the file is corrupted, truncated or not a muax checkpoint.
  """
  params, opt_leaves, metadata, _, _ = read(path)
  return params, opt_leaves, metadata


def read(path: Union[str, os.PathLike], *, run_arrays: bool = False
         ) -> Tuple[dict, List[np.ndarray], dict, Optional[dict], Dict[str, np.ndarray]]:
  """`load` plus the training-run state written with `save(..., run=...)`.

  Returns:
    `(params, opt_leaves, metadata, run, arrays)`; `run` is None for a plain
    model checkpoint; `arrays` holds the run's arrays when `run_arrays`.

  Raises:
    FileNotFoundError: no file at the path (with or without suffix).
    UnreadableCheckpointError: the file is damaged, truncated, altered,
      foreign or pickled, or its manifest does not describe its arrays.
    NewerVersionError: written by a newer muax.
  """
  file = resolve(path)
  with _open_archive(file) as (zf, members):
    manifest = _read_manifest(zf, members, file)
    param_leaves = [_read_entry(zf, members, f"p{i}", file)
                    for i in range(len(manifest["param_paths"]))]
    opt_leaves = [_read_entry(zf, members, f"o{i}", file)
                  for i in range(manifest["num_opt_leaves"])]
    arrays = {}
    if run_arrays:
      arrays = {name[len(_RUN_PREFIX):]: _read_entry(zf, members, name, file)
                for name in members if name.startswith(_RUN_PREFIX)}
  params = _unflatten_params(manifest["param_paths"], param_leaves)
  return params, opt_leaves, manifest["metadata"], manifest.get("run"), arrays


def read_manifest(path: Union[str, os.PathLike]) -> dict:
  """The checked manifest of a checkpoint, without reading its arrays."""
  file = resolve(path)
  with _open_archive(file) as (zf, members):
    return _read_manifest(zf, members, file)


@contextlib.contextmanager
def _open_archive(file: Path):
  """`with _open_archive(file) as (zip, entries by name):`; every failure to
  read inside the block becomes an UnreadableCheckpointError."""
  with open(file, "rb") as f:
    head = f.read(len(_ZIP_MAGIC))
  if head != _ZIP_MAGIC:
    raise _not_a_checkpoint(file, head)
  try:
    with zipfile.ZipFile(file) as zf:
      members = {}
      for info in zf.infolist():
        # np.savez writes only .npy entries, once each: any other name is a
        # damaged one (zipfile compares it with the entry's own header on open).
        name = info.filename[:-len(".npy")]
        if not info.filename.endswith(".npy") or name in members:
          raise UnreadableCheckpointError(
              f"{file} is damaged: unexpected entry {info.filename!r}")
        members[name] = info
      if _directory_count(file) != (min(len(members), 0xFFFF),) * 2:
        # zipfile reads the central directory by its size and never checks the
        # counts: a damaged size would silently drop entries.
        raise UnreadableCheckpointError(
            f"{file} is damaged: its zip directory does not list {len(members)} entries")
      yield zf, members
  except CheckpointError:
    raise
  except Exception as e:  # zip, header, JSON and decoding errors of a damaged file
    raise UnreadableCheckpointError(
        f"{file} is not a readable muax checkpoint (corrupted, truncated or altered): "
        f"{type(e).__name__}: {e}") from e


def _directory_count(file: Path):
  """`(entries on this disk, entries in all)` from the end-of-directory record."""
  with open(file, "rb") as f:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - (1 << 16) - 22))
    tail = f.read()
  at = len(tail) - 22  # np.savez writes no archive comment: the record ends the file
  if at < 0 or tail[at:at + 4] != b"PK\x05\x06":
    at = tail.rfind(b"PK\x05\x06")
  record = tail[at:at + 22]
  if at < 0 or len(record) < 22:
    return None
  return int.from_bytes(record[8:10], "little"), int.from_bytes(record[10:12], "little")


def npy_header(f: IO[bytes], what: str) -> Tuple[Tuple[int, ...], bool, np.dtype]:
  """`(shape, fortran_order, dtype)` from the `.npy` header at `f`'s position
  (numpy's public reader; versions 1.0 and 2.0, which numpy writes)."""
  version = np.lib.format.read_magic(f)
  if version == (1, 0):
    return np.lib.format.read_array_header_1_0(f)
  if version == (2, 0):
    return np.lib.format.read_array_header_2_0(f)
  raise UnreadableCheckpointError(f"{what} has .npy format version {version}, not 1.0 "
                                  "or 2.0")


def _read_entry(zf, members, name: str, file: Path) -> np.ndarray:
  """One `.npy` entry, read to its end (so its CRC-32 is checked), exactly as
  long as its header says; pickled (object) entries are refused."""
  info = members.get(name)
  if info is None:
    raise UnreadableCheckpointError(f"{file} is damaged: it has no array {name!r}")
  with zf.open(info) as f:
    shape, fortran, dtype = npy_header(f, f"{file}: array {name!r}")
    if dtype.hasobject:
      raise UnreadableCheckpointError(
          f"{file}: array {name!r} holds pickled Python objects; muax never unpickles a "
          "file, since that can run arbitrary code")
    nbytes = math.prod(shape) * dtype.itemsize
    if f.tell() + nbytes != info.file_size:
      raise UnreadableCheckpointError(
          f"{file} is damaged: array {name!r} of shape {shape} and dtype {dtype} needs "
          f"{nbytes} bytes, the entry holds {info.file_size - f.tell()}")
    data = np.empty(nbytes, np.uint8)
    view, done = memoryview(data), 0
    while done < nbytes:
      chunk = f.read(min(_READ_CHUNK, nbytes - done))
      if not chunk:
        raise UnreadableCheckpointError(f"{file} is truncated in array {name!r}")
      view[done:done + len(chunk)] = chunk
      done += len(chunk)
    if f.read(1):  # also the read that checks the CRC-32 when nbytes is 0
      raise UnreadableCheckpointError(f"{file} is damaged: array {name!r} is too long")
  if dtype.itemsize == 0:
    return np.empty(shape, dtype)
  return data.view(dtype).reshape(shape, order="F" if fortran else "C")


def _read_manifest(zf, members, file: Path) -> dict:
  if _MANIFEST not in members:
    raise UnreadableCheckpointError(f"{file} is not a muax checkpoint (no manifest)")
  raw = _read_entry(zf, members, _MANIFEST, file)
  if raw.dtype != np.uint8 or raw.ndim != 1:
    raise UnreadableCheckpointError(f"{file} has a damaged manifest (not JSON bytes)")
  manifest = json.loads(raw.tobytes().decode())
  _check_manifest(manifest, file)
  if len(manifest["param_paths"]) + manifest["num_opt_leaves"] >= len(members):
    raise UnreadableCheckpointError(
        f"{file} is damaged: its manifest lists more arrays than it holds")
  expected = ({_MANIFEST} | {f"p{i}" for i in range(len(manifest["param_paths"]))}
              | {f"o{i}" for i in range(manifest["num_opt_leaves"])})
  unexpected = [name for name in members
                if name not in expected and not name.startswith(_RUN_PREFIX)]
  if unexpected:
    raise UnreadableCheckpointError(
        f"{file} is damaged: entries {unexpected} are not in its manifest")
  return manifest


def _write_atomic(target: Path, manifest: dict, entries: dict) -> Path:
  # Temporary file in the same folder, fsynced, then renamed over the target:
  # readers see the old file or the complete new one, never a partial one.
  target.parent.mkdir(parents=True, exist_ok=True)
  text = json.dumps(manifest, default=_json_scalar, allow_nan=False)
  arrays = {_MANIFEST: np.frombuffer(text.encode(), np.uint8)}
  arrays.update(entries)
  fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, target)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  _fsync_dir(target.parent)
  return target


def _check_manifest(manifest, file):
  """Raises UnreadableCheckpointError unless `manifest` has the keys and types
  `read` relies on (NewerVersionError for a newer format)."""
  def damaged(what):
    return UnreadableCheckpointError(f"{file} has a damaged manifest: {what}")

  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise UnreadableCheckpointError(f"{file} is not a muax checkpoint (foreign manifest)")
  version = manifest.get("version")
  if not _is_int(version) or version < 1:
    raise damaged(f"version {version!r}")
  if version > VERSION:
    raise NewerVersionError(
        f"{file} was written by a newer muax (checkpoint version "
        f"{manifest['version']}, this muax reads up to {VERSION}); upgrade muax")
  paths = manifest.get("param_paths")
  if not isinstance(paths, list) or not all(
      isinstance(p, list) and p and all(isinstance(k, str) for k in p) for p in paths):
    raise damaged(f"param_paths must be a list of key lists, got {paths!r:.200}")
  keys = {tuple(p) for p in paths}
  if len(keys) != len(paths) or any(p[:i] in keys for p in keys for i in range(1, len(p))):
    raise damaged("param_paths repeat a key or nest one key inside another")
  if not _is_int(manifest.get("num_opt_leaves")) or manifest["num_opt_leaves"] < 0:
    raise damaged(f"num_opt_leaves {manifest.get('num_opt_leaves')!r}")
  for name in ("metadata", "run"):
    if name in manifest and not isinstance(manifest[name], dict):
      raise damaged(f"{name} must be a dict, got {type(manifest[name]).__name__}")
  manifest.setdefault("metadata", {})


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _not_a_checkpoint(file: Path, head: bytes) -> UnreadableCheckpointError:
  if head.startswith(_NPY_MAGIC[:len(head)]) and head:
    return LegacyCheckpointError(_legacy_message(file, file))
  if head[:1] == b"\x80":
    return UnreadableCheckpointError(
        f"{file} is a Python pickle, not a muax checkpoint; muax never unpickles a file, "
        "since that can run arbitrary code. Retrain, or re-save the parameters from "
        "trusted code with model.save")
  what = "the file is empty" if not head else "it is not a zip archive"
  return UnreadableCheckpointError(f"{file} is not a readable muax checkpoint: {what}")


def _legacy_message(file: Path, given: Path) -> str:
  return (f"{file} is a checkpoint of the old muax package (<= 0.0.2): a NumPy .npy file "
          "of pickled Python objects. muax never unpickles a file, since that can run "
          "arbitrary code, so model.load refuses it. If you trust the file, convert it "
          "once: muax.legacy.convert(path, model, sample_input) reads only plain "
          "containers and arrays from it and writes a muax checkpoint"
          + ("" if file == given else f" (asked for {str(given)!r})"))


def _json_scalar(value):
  """numpy scalars in a manifest become Python numbers; anything else is refused."""
  if isinstance(value, (np.integer, np.floating, np.bool_)):
    return value.item()
  raise TypeError(f"cannot write {type(value).__name__} into a checkpoint manifest "
                  "(JSON numbers, strings, lists and dicts only)")


def _flatten_params(params):
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  paths = [[_key_name(k) for k in key_path] for key_path, _ in flat]
  return paths, [leaf for _, leaf in flat]


def _key_name(key):
  if isinstance(key, jax.tree_util.DictKey):
    return str(key.key)
  raise CheckpointError(f"params must be nested dicts to be saved, found key {key!r}")


def _unflatten_params(paths, leaves):
  params = {}
  for path, leaf in zip(paths, leaves):
    node = params
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = leaf
  return params


def _fsync_dir(directory):
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)
