"""Checkpoint files: a zip of plain arrays plus a JSON manifest; never pickle.

A checkpoint is a `.npz` archive. Entry `__muax__` holds a JSON manifest
(format name, version, muax version, the parameter key paths, metadata);
entries `p0..` are the parameter leaves and `o0..` the optimizer state leaves.
A run checkpoint (written by `fit` to resume training) is a model checkpoint
with the run's state added: a `run` section in the manifest and `run.*` arrays.
Reading uses `allow_pickle=False`, so a file cannot run code when loaded.
Writes go to a temporary file that is fsynced and renamed over the target, so
a crash leaves either the old or the new checkpoint, never half of one.
"""
import json
import os
import tempfile
import zipfile
from pathlib import Path

import jax
import numpy as np

FORMAT = "muax-checkpoint"
VERSION = 1
SUFFIX = ".npz"
_MANIFEST = "__muax__"
_RUN_PREFIX = "run."


class CheckpointError(ValueError):
  """A checkpoint file is missing, corrupted, foreign or does not fit the model."""


class NewerVersionError(CheckpointError):
  """A checkpoint written by a newer muax, with a format this one cannot read."""


def file_for(path) -> Path:
  """The file `save(path)` writes: `path` itself if it ends in .npz."""
  path = Path(path)
  return path if path.suffix == SUFFIX else path.with_name(path.name + SUFFIX)


def resolve(path) -> Path:
  """Finds the checkpoint file for a path given with or without a suffix."""
  path = Path(path)
  candidates = [path, file_for(path)]
  if path.suffix and path.suffix != SUFFIX:
    candidates.append(path.with_suffix(SUFFIX))
  for candidate in candidates:
    if candidate.is_file():
      return candidate
  tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
  raise FileNotFoundError(f"no muax checkpoint at {str(path)!r} (tried: {tried})")


def save(path, params, opt_state, metadata: dict, *, run: dict = None,
         arrays: dict = None) -> Path:
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


def load(path):
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


def read(path, *, run_arrays: bool = False):
  """`load` plus the training-run state written with `save(..., run=...)`.

  Returns:
    `(params, opt_leaves, metadata, run, arrays)`; `run` is None for a plain
    model checkpoint; `arrays` holds the run's arrays when `run_arrays`.
  """
  file = resolve(path)
  try:
    with np.load(file, allow_pickle=False) as archive:
      if _MANIFEST not in archive.files:
        raise CheckpointError(f"{file} is not a muax checkpoint (no manifest)")
      manifest = json.loads(archive[_MANIFEST].tobytes().decode())
      _check_manifest(manifest, file)
      param_leaves = [archive[f"p{i}"] for i in range(len(manifest["param_paths"]))]
      opt_leaves = [archive[f"o{i}"] for i in range(manifest["num_opt_leaves"])]
      arrays = {}
      if run_arrays:
        arrays = {name[len(_RUN_PREFIX):]: archive[name] for name in archive.files
                  if name.startswith(_RUN_PREFIX)}
  except CheckpointError:
    raise
  except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError,
          UnicodeDecodeError, TypeError) as e:
    if "pickle" in str(e):
      raise CheckpointError(
          f"{file} holds pickled Python objects (checkpoints of muax <= 0.0.2 were "
          "pickles); muax never unpickles a file, since that can run arbitrary code. "
          "Retrain, or re-save the parameters from trusted code with model.save") from e
    raise CheckpointError(
        f"{file} is not a readable muax checkpoint (corrupted, truncated or "
        f"foreign file): {type(e).__name__}: {e}") from e
  try:
    params = _unflatten_params(manifest["param_paths"], param_leaves)
  except (TypeError, KeyError, IndexError, AttributeError) as e:
    raise CheckpointError(f"{file} has a malformed manifest: {e}") from e
  return params, opt_leaves, manifest.get("metadata", {}), manifest.get("run"), arrays


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
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise CheckpointError(f"{file} is not a muax checkpoint (foreign manifest)")
  if not isinstance(manifest.get("version", 0), int):
    raise CheckpointError(f"{file} has a malformed manifest (version "
                          f"{manifest.get('version')!r})")
  if manifest.get("version", 0) > VERSION:
    raise NewerVersionError(
        f"{file} was written by a newer muax (checkpoint version "
        f"{manifest['version']}, this muax reads up to {VERSION}); upgrade muax")


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
