"""Opt-in conversion of checkpoints written by the old muax package (<= 0.0.2).

The old package saved a model with `jnp.save(file, {'params': ...,
'optimizer_state': ...})`: a NumPy `.npy` file holding a pickle of JAX arrays
and optax state. Loading a pickle can run arbitrary code, so muax never
unpickles a file, and `MuZero.load` refuses these files.

This module exists so that users of the old package can bring their trained
weights over, once, by asking for it explicitly: `convert(path, model,
sample_input)` reads the old file and writes a muax checkpoint (`.npz`) that
`MuZero.load` reads from then on. Nothing here runs on its own: only calling
`read_legacy` or `convert` reads a pickle.

Even then the pickle is read by a restricted unpickler that admits plain
containers and NumPy arrays only. JAX arrays are rebuilt as NumPy arrays
without running JAX code, optax states come back as plain tuples without
importing optax, and any other global a file refers to (`os.system`,
`builtins.eval`, ...) makes the whole file refused before anything is called.
"""
import collections
import io
import pickle
import struct
import warnings
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from muax import checkpoint
from muax.checkpoint import CheckpointError

__all__ = ["convert", "read_legacy"]

_SUFFIX = ".npy"
_MAX_LISTED = 5  # key paths listed in a mismatch message

# Where the numpy objects live that `np.save` / `pickle` refer to (numpy 1.x
# names `numpy.core`, numpy 2 `numpy._core`).
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
# Where pickle protocol 5 (a plain pickle, not `np.save`) finds `_frombuffer`.
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
_JAX_ARRAY_NAMES = (("jax._src.array", "_reconstruct_array"),  # jax 0.4
                    ("jax._src.device_array", "_reconstruct_device_array"))  # jax 0.3

# The errors a malformed file can make the header parser or the unpickler raise.
_MALFORMED = (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError,
              AttributeError, IndexError, KeyError, MemoryError, OverflowError,
              RecursionError, SyntaxError, UnicodeError)


class _Refused(Exception):
  """A pickle asks for something a checkpoint of the old package never holds."""


class _OptaxState(tuple):
  """Stand-in for an optax state NamedTuple: a plain tuple of its fields."""
  __slots__ = ()
  optax_name = ""

  def __new__(cls, *args):
    return tuple.__new__(cls, args)

  def __repr__(self):
    return f"{self.optax_name}{tuple.__repr__(self)}"


_stand_ins = {}


def _stand_in(module: str, name: str) -> type:
  """The stand-in tuple class for the optax state `module.name` (one per name)."""
  key = f"{module}.{name}"
  if key not in _stand_ins:
    _stand_ins[key] = type(name, (_OptaxState,), {"__slots__": (), "optax_name": key})
  return _stand_ins[key]


def _rebuild_jax_array(fun, args, arr_state, aval_state):
  """Rebuilds a pickled JAX array as the NumPy array it holds; runs no JAX code.

  Args:
    fun: how the array's NumPy value was pickled: the admitted numpy
      `_reconstruct`, nothing else.
    args: `fun`'s arguments, `(numpy.ndarray, shape, typecode)`.
    arr_state: the NumPy array's state, for `ndarray.__setstate__`.
    aval_state: JAX's abstract value settings (`weak_type`); ignored.

  Returns:
    The NumPy array.

  Raises:
    _Refused: `fun` or `args` are not those of a NumPy array.
  """
  del aval_state
  if fun is not _multiarray()._reconstruct:
    raise _Refused(f"a pickled JAX array is rebuilt with {fun!r:.100}, not with numpy's "
                   "_reconstruct")
  if not isinstance(args, tuple) or not args or args[0] is not np.ndarray:
    raise _Refused(f"a pickled JAX array is rebuilt from {args!r:.100}, not from the "
                   "arguments of a NumPy array")
  value = fun(*args)
  value.__setstate__(arr_state)
  return value


def _multiarray():
  try:
    from numpy._core import multiarray  # numpy >= 2
  except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray
  return multiarray


def _numeric():
  try:
    from numpy._core import numeric  # numpy >= 2
  except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import numeric
  return numeric


def _admitted(module: str, name: str):
  """The object a global `module.name` resolves to, or None when refused."""
  if module in _NUMPY_MODULES:
    return {"_reconstruct": _multiarray()._reconstruct,
            "scalar": _multiarray().scalar}.get(name)
  if module in _NUMPY_NUMERIC and name == "_frombuffer":
    return _numeric()._frombuffer  # frombuffer(bytes, dtype).reshape(shape)
  if module == "numpy":
    return {"ndarray": np.ndarray, "dtype": np.dtype}.get(name)
  if (module, name) in _JAX_ARRAY_NAMES:
    return _rebuild_jax_array
  if (module.startswith("optax.") and name.isidentifier() and name.endswith("State")
      and all(part.isidentifier() for part in module.split("."))):
    return _stand_in(module, name)
  if (module, name) == ("collections", "OrderedDict"):
    return collections.OrderedDict
  return None


class _RestrictedUnpickler(pickle.Unpickler):
  """An unpickler that resolves only the globals of plain arrays and containers."""

  def __init__(self, file, source: Path):
    super().__init__(file)
    self._source = source

  def find_class(self, module, name):
    found = _admitted(module, name)
    if found is None:
      raise CheckpointError(
          f"{self._source} refers to the global {module}.{name}, which a checkpoint of "
          "the old muax package never holds (only arrays and containers are read); "
          "the file is refused and nothing from it was run")
    return found

  def persistent_load(self, pid):
    raise CheckpointError(f"{self._source} holds a persistent pickle id; a checkpoint of "
                          "the old muax package never does; the file is refused")


def _legacy_file(path) -> Path:
  """The old checkpoint for `path`: `path.npy` (the old `fit` left the suffix off)."""
  path = Path(path)
  candidates = [path] if path.name.endswith(_SUFFIX) else [
      path.with_name(path.name + _SUFFIX), path]
  for candidate in candidates:
    if candidate.is_file():
      return candidate
  tried = ", ".join(str(c) for c in candidates)
  raise FileNotFoundError(f"no checkpoint of the old muax package at {str(path)!r} "
                          f"(tried: {tried})")


def _unpickle(data: bytes, file: Path):
  """The object pickled in `data`: a `.npy` 0-d object array or a plain pickle."""
  stream = io.BytesIO(data)
  if data.startswith(b"\x93NUMPY"):
    shape, _, dtype = checkpoint.npy_header(stream, str(file))
    if shape != () or dtype != np.dtype(object):
      raise CheckpointError(
          f"{file} holds an array of shape {shape} and dtype {dtype}, not the 0-d object "
          "array of a checkpoint of the old muax package")
  elif not data.startswith(b"\x80"):
    raise CheckpointError(f"{file} is neither a .npy file nor a pickle, so not a "
                          "checkpoint of the old muax package")
  payload = _RestrictedUnpickler(stream, file).load()
  if isinstance(payload, np.ndarray) and payload.dtype == object and payload.shape == ():
    payload = payload.item()
  return payload


def _array(value, file: Path, where: str) -> np.ndarray:
  """`value` as a numeric numpy array; anything else is refused."""
  if isinstance(value, (bool, int, float, np.generic)):  # numbers, numpy scalars
    value = np.asarray(value)
  if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
    kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
    raise CheckpointError(f"{file} holds {kind} at {where}, not a numeric array")
  return value


def _params(tree, file: Path, path=()):
  """The params as nested dicts of numpy arrays; anything else is refused."""
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      if not isinstance(key, str):
        raise CheckpointError(f"{file} has a params key {key!r} at "
                              f"{_keystr(path) or 'the top'}; keys are strings")
      out[key] = _params(value, file, path + (key,))
    return out
  return _array(tree, file, f"params{_keystr(path)}")


def _plain(tree, file: Path):
  """Stand-in tuples made plain tuples, so `tree_leaves` sees optax's order."""
  if isinstance(tree, tuple):
    return tuple(_plain(x, file) for x in tree)
  if isinstance(tree, list):
    return [_plain(x, file) for x in tree]
  if isinstance(tree, dict):
    return type(tree)((k, _plain(v, file)) for k, v in tree.items())
  if tree is None:
    return None
  return _array(tree, file, "optimizer_state")


def _keystr(path) -> str:
  return "".join(f"[{key!r}]" for key in path)


def read_legacy(path: Any) -> dict:
  """Reads a checkpoint of the old muax package without running code from it.

  Only plain containers and NumPy arrays are rebuilt: JAX arrays come back as
  NumPy arrays, optax states as tuples. A file that refers to anything else
  is refused before any of it is called.

  Args:
    path: the old checkpoint, with or without `.npy` (the old `fit` returned
      it without). A plain pickle file of the same dict is read too.

  Returns:
    `{'params': nested dicts of numpy arrays, 'optimizer_state': the list of
    the optimizer state's array leaves in tree order, or None if the file
    holds none}`.

  Raises:
    FileNotFoundError: no file at `path` or `path.npy`.
    CheckpointError: the file is malformed, truncated, not a checkpoint of the
      old package, or refers to a global other than those of arrays and
      containers.
  """
  file = _legacy_file(path)
  data = file.read_bytes()
  try:
    payload = _unpickle(data, file)
    if not isinstance(payload, dict) or "params" not in payload:
      raise CheckpointError(
          f"{file} holds a {type(payload).__name__}, not the {{'params', "
          "'optimizer_state'}} dict of a checkpoint of the old muax package")
    params = _params(payload["params"], file)
    if not isinstance(params, dict):
      raise CheckpointError(f"{file} holds params that are not a dict")
    opt_state = payload.get("optimizer_state")
    opt_leaves = None
    if opt_state is not None:
      opt_leaves = jax.tree_util.tree_leaves(_plain(opt_state, file))
  except CheckpointError:
    raise
  except _Refused as e:
    raise CheckpointError(f"{file} is refused and nothing from it was run: {e}") from e
  except _MALFORMED as e:
    raise CheckpointError(
        f"{file} is not a readable checkpoint of the old muax package (corrupted, "
        f"truncated or foreign file): {type(e).__name__}: {e}") from e
  return {"params": params, "optimizer_state": opt_leaves}


def _flat(params, path=()):
  """`{key path: leaf}` of nested dicts."""
  if isinstance(params, dict):
    out = {}
    for key, value in params.items():
      out.update(_flat(value, path + (key,)))
    return out
  return {path: params}


def _check_params(old: dict, template, file: Path):
  """Raises CheckpointError unless `old` has `template`'s keys, shapes and floats."""
  old_flat = _flat(old)
  new_flat = _flat(jax.tree_util.tree_map(np.asarray, template))
  problems = []
  for key in sorted(set(old_flat) | set(new_flat), key=lambda k: [str(p) for p in k]):
    a, b = old_flat.get(key), new_flat.get(key)
    if a is None:
      problems.append(f"{_keystr(key)}: missing in the file, model has {b.shape}")
    elif b is None:
      problems.append(f"{_keystr(key)}: file has {a.shape}, missing in the model")
    elif a.shape != b.shape:
      problems.append(f"{_keystr(key)}: file has {a.shape}, model has {b.shape}")
    elif not np.issubdtype(a.dtype, np.floating):
      problems.append(f"{_keystr(key)}: file has dtype {a.dtype}, not a float")
  if problems:
    listed = "; ".join(problems[:_MAX_LISTED])
    extra = len(problems) - _MAX_LISTED
    more = f" (and {extra} more)" if extra > 0 else ""
    raise CheckpointError(
        f"{file} holds parameters that do not fit this model: {listed}{more}. Build the "
        "model's networks the same way as the old ones (same modules, sizes, support "
        "size and observation shape) before converting")


def _fits(old_leaves, template_leaves) -> bool:
  """Whether the old optimizer leaves match the template's count, shapes and kinds."""
  if old_leaves is None or len(old_leaves) != len(template_leaves):
    return False
  for a, b in zip(old_leaves, template_leaves):
    kind_a, kind_b = np.dtype(a.dtype).kind, np.dtype(b.dtype).kind
    if np.shape(a) != np.shape(b) or (kind_a == "f") != (kind_b == "f"):
      return False
  return True


def convert(path: Any, model: Any, sample_input: Optional[Any] = None,
            out: Optional[Any] = None) -> str:
  """Converts a checkpoint of the old muax package into a muax checkpoint.

  Reads the old file with `read_legacy` (no code from it runs), checks its
  parameters fit `model`, writes them with the optimizer state as a muax
  checkpoint and loads that into `model`.

  Args:
    path: the old checkpoint, with or without `.npy`.
    model: a `muax.MuZero` whose networks are built as the old ones were.
    sample_input: a batch of observations `[1, *obs_shape]`, to initialise
      `model` when it has no params yet; not needed otherwise.
    out: where to write the muax checkpoint (`.npz` added if missing); by
      default the old path without `.npy`, plus `.npz`, in the same folder.

  Returns:
    The path of the written checkpoint, for `MuZero.load`.

  Raises:
    FileNotFoundError: no old checkpoint at `path`.
    FileExistsError: the output file exists already (it is never overwritten).
    ValueError: `model` has no params and no `sample_input` was given.
    CheckpointError: the old file is malformed or refused (see `read_legacy`),
      or its parameters do not fit `model`.

  Warns:
    UserWarning: the old optimizer state does not fit `model`'s optimizer, so
      a fresh one is written instead.
  """
  file = _legacy_file(path)
  if out is None:
    stem = file.name[:-len(_SUFFIX)] if file.name.endswith(_SUFFIX) else file.name
    out = file.with_name(stem + checkpoint.SUFFIX)
  out_file = checkpoint.file_for(out)
  if out_file.exists():
    raise FileExistsError(f"{out_file} exists already; convert never overwrites a "
                          "file: remove it or pass another out=")
  if model.params is None and sample_input is None:
    raise ValueError("model has no params yet: pass sample_input, a batch of "
                     "observations [1, *obs_shape], to initialise it before converting")
  old = read_legacy(file)  # before touching the model: a refused file changes nothing
  if model.params is None:
    model.init(jax.random.PRNGKey(0), sample_input)
  _check_params(old["params"], model.params, file)
  params = jax.tree_util.tree_map(lambda a, b: np.asarray(a, b.dtype), old["params"],
                                  model.params)
  template, treedef = jax.tree_util.tree_flatten(model.optimizer_state)
  old_leaves = old["optimizer_state"]
  if _fits(old_leaves, template):
    opt_state = jax.tree_util.tree_unflatten(
        treedef, [np.asarray(a, b.dtype) for a, b in zip(old_leaves, template)])
  else:
    warnings.warn(
        f"{file}: the saved optimizer state does not fit this model's optimizer "
        f"({'none saved' if old_leaves is None else 'other leaves or shapes'}); "
        "the optimizer state was reset to a fresh one", stacklevel=2)
    opt_state = model.optimizer.init(jax.tree_util.tree_map(jnp.asarray, params))
  checkpoint.save(out_file, params, opt_state, model.checkpoint_metadata())
  model.load(out_file)
  return str(out_file)
