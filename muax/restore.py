"""Fitting a checkpoint to a model: `MuZero.load`'s checks and restore.

`restore` reads a checkpoint (`muax.checkpoint.load`: no code is run) and
checks it against the model that loads it: metadata types, support size,
observation shape, the parameter tree the model's networks would build, the
optimizer state its optimizer would build, and the kinds of every array. A
checkpoint that does not fit is refused with a `CheckpointError` that names
what differs; nothing is cast or half-loaded.
"""
from typing import Any, Callable, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from muax import checkpoint

__all__ = ["check_kinds", "check_metadata", "check_tree", "restore", "train_state"]


def restore(file: Any, *, init_params: Callable, optimizer: optax.GradientTransformation,
            support_size: int, obs_shape: Optional[Tuple[int, ...]],
            check_checkpoint: Optional[Callable] = None
            ) -> Tuple[Any, Any, Tuple[int, ...], Optional[int]]:
  """`(params, opt_state, obs_shape, num_actions)` of the checkpoint at `file`.

  Args:
    file: the checkpoint (`.npz` added if missing).
    init_params: the model's pure `(key, sample) -> (params, num_actions)`;
      only its shapes are computed (`jax.eval_shape`).
    optimizer: the model's optimizer (the saved state must fit it).
    support_size: the model's; the checkpoint's must equal it.
    obs_shape: the model's observation shape, or None before `init`.
    check_checkpoint: the variant's own `(metadata, file)` check, run first.

  Raises:
    FileNotFoundError, muax.checkpoint.CheckpointError: as `MuZero.load`.
  """
  params, opt_leaves, meta = checkpoint.load(file)
  if check_checkpoint is not None:
    check_checkpoint(meta, file)
  check_metadata(meta, file)
  if meta["support_size"] != support_size:
    raise checkpoint.CheckpointError(
        f"checkpoint {file} has support_size={meta['support_size']}, this model "
        f"has support_size={support_size}")
  saved_shape = tuple(meta["obs_shape"])
  if obs_shape is not None and saved_shape != obs_shape:
    raise checkpoint.CheckpointError(
        f"checkpoint {file} was saved for observations of shape {saved_shape}, this "
        f"model was initialised for {obs_shape}")
  found = {}

  def init_shapes():
    initial, found["num_actions"] = init_params(jax.random.PRNGKey(0),
                                                jnp.zeros((1,) + saved_shape))
    return initial

  try:
    expected = jax.eval_shape(init_shapes)
  except (ValueError, TypeError) as e:  # the networks cannot take such observations
    raise checkpoint.CheckpointError(
        f"checkpoint {file} was saved for observations of shape {saved_shape}, which "
        f"this model's networks cannot take: {type(e).__name__}: {e}") from e
  check_tree(params, expected, file, "parameters")
  if meta["num_actions"] != found["num_actions"]:
    raise checkpoint.UnreadableCheckpointError(
        f"checkpoint {file} is damaged: its metadata says num_actions="
        f"{meta['num_actions']}, its networks have {found['num_actions']}")
  params = jax.tree_util.tree_map(jnp.asarray, params)
  opt_template = jax.eval_shape(optimizer.init, params)
  leaves, treedef = jax.tree_util.tree_flatten(opt_template)
  if len(leaves) != len(opt_leaves) or any(
      np.shape(a) != b.shape for a, b in zip(opt_leaves, leaves)):
    raise checkpoint.CheckpointError(
        f"checkpoint {file} has an optimizer state that does not fit this model's "
        "optimizer")
  check_kinds(opt_leaves, leaves, file, "optimizer state")
  opt_state = jax.tree_util.tree_unflatten(
      treedef, [jnp.asarray(x, b.dtype) for x, b in zip(opt_leaves, leaves)])
  return params, opt_state, saved_shape, found["num_actions"]


def check_tree(params: Any, expected: Any, file: Any, what: str) -> None:
  """CheckpointError unless `params` has the structure and shapes of
  `expected` (arrays or shape structs), then `check_kinds` on the leaves."""
  got = jax.tree_util.tree_map(np.shape, params)
  want = jax.tree_util.tree_map(lambda x: tuple(x.shape), expected)
  if jax.tree_util.tree_structure(got) != jax.tree_util.tree_structure(want) or \
      jax.tree_util.tree_leaves(got) != jax.tree_util.tree_leaves(want):
    raise checkpoint.CheckpointError(
        f"checkpoint {file} holds {what} that do not fit this model's networks "
        "(different architecture or observation shape)")
  check_kinds(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(expected),
               file, what)


def check_kinds(arrays: Sequence[np.ndarray], templates: Sequence[Any], file: Any,
                what: str) -> None:
  """Float arrays for float templates, integers for integers: a checkpoint
  holding bools, complex numbers or strings there is refused, never cast
  (muax writes neither, so the file is damaged)."""
  for i, (x, template) in enumerate(zip(arrays, templates)):
    want = np.dtype(template.dtype)
    if not (np.issubdtype(want, np.floating) and np.issubdtype(x.dtype, np.floating)
            or np.issubdtype(want, np.integer) and np.issubdtype(x.dtype, np.integer)):
      raise checkpoint.UnreadableCheckpointError(
          f"checkpoint {file} is damaged: its {what} leaf {i} has dtype {x.dtype}, "
          f"this model needs {want}")


def check_metadata(meta: dict, file: Any) -> None:
  """Raises CheckpointError unless the model fields of a checkpoint's metadata
  have the types `save` writes."""
  def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)

  fields = {
      "obs_shape": lambda x: isinstance(x, list) and all(is_int(d) and d >= 0 for d in x),
      "num_actions": lambda x: x is None or (is_int(x) and x >= 1),
      "support_size": lambda x: is_int(x) and x >= 1,
      "policy": lambda x: isinstance(x, str),
      "discount": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
      "two_player": lambda x: isinstance(x, bool),
  }
  for name, valid in fields.items():
    if name not in meta and name == "two_player":
      continue  # checkpoints written before two-player games had no flag
    if name not in meta or not valid(meta[name]):
      raise checkpoint.UnreadableCheckpointError(
          f"checkpoint {file} is damaged: its metadata field {name!r} is "
          f"{meta.get(name, 'missing')!r}")


def train_state(state: Any, current: Any) -> Any:
  """`state` (a run state's saved `TrainState`) as the arrays of `current`'s
  dtypes, once its structure and shapes are checked against `current`.

  Raises:
    ValueError: `state` does not have the model's structure and shapes.
  """
  want = jax.tree_util.tree_map(np.shape, current)
  got = jax.tree_util.tree_map(np.shape, state)
  if jax.tree_util.tree_structure(got) != jax.tree_util.tree_structure(want) or \
      jax.tree_util.tree_leaves(got) != jax.tree_util.tree_leaves(want):
    raise ValueError("the training state does not fit this model (another "
                     "architecture, optimizer or reanalysis setting)")
  return jax.tree_util.tree_map(lambda x, t: jnp.asarray(x, t.dtype), state, current)
