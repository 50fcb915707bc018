"""Argument checks shared by the public API: one wording for one mistake."""
import functools
import os
from typing import Any, Callable, Optional, Tuple, Union

import jax
import numpy as np

_MAX_SEED = 2 ** 63  # what jax.random.PRNGKey and numpy's generators accept


def _got(name: str, value, echo_name: bool) -> str:
  return f"{name}={value!r}" if echo_name else repr(value)


def integer(name: str, value: Any, *, low: int = 1, allow_none: bool = False,
            what: Optional[str] = None, label: Optional[str] = None,
            echo_name: bool = True) -> Optional[int]:
  """`int(value)` if it is an integer >= `low` (numpy's too; bools refused).

  The message reads "`label` must be `what`, got `name=value`": `label`
  defaults to `name`, `what` to "an integer >= low" ("a positive integer" for 1,
  "a non-negative integer" for 0), and `echo_name=False` shows the bare value.

  Raises:
    ValueError: naming `name` and `value`.
  """
  if allow_none and value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    if what is None:
      what = {1: "a positive integer", 0: "a non-negative integer"}.get(
          low, f"an integer >= {low}") + (" or None" if allow_none else "")
    raise ValueError(f"{label or name} must be {what}, got {_got(name, value, echo_name)}")
  return int(value)


def positive_int(name: str, value: Any, *, allow_zero: bool = False,
                 allow_none: bool = False, **message: Any) -> Optional[int]:
  """`int(value)` if it is a positive (or, with `allow_zero`, non-negative)
  integer; `integer` with `low` 1 (or 0), the same `message` keywords."""
  return integer(name, value, low=0 if allow_zero else 1, allow_none=allow_none, **message)


def number(name: str, value: Any, *, low: float = -np.inf, high: float = np.inf,
           strict: bool = False, what: str, label: Optional[str] = None,
           echo_name: bool = True, not_a_number: type = TypeError) -> float:
  """`float(value)` if it is a finite real number in `[low, high]` (`(low, high]`
  when `strict`). The message reads as `integer`'s.

  Raises:
    TypeError: not a number (bools and strings included), naming `name` and
      `value` (`not_a_number` picks another exception type).
    ValueError: NaN, infinite or out of range.
  """
  def message():
    return f"{label or name} must be {what}, got {_got(name, value, echo_name)}"

  if isinstance(value, (bool, str, bytes)):
    raise not_a_number(message())
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise not_a_number(message()) from None
  if not (np.isfinite(x) and (x > low if strict else x >= low) and x <= high):
    raise ValueError(message())
  return x


def seed(name: str, value: Any) -> int:
  """`int(value)` if it is an integer in [0, 2**63), what every random
  generator muax seeds accepts."""
  what = "an integer in [0, 2**63)"
  if integer(name, value, low=0, what=what) >= _MAX_SEED:
    raise ValueError(f"{name} must be {what}, got {name}={value!r}")
  return int(value)


def flag(name: str, value: Any) -> bool:
  """`bool(value)` if it is True or False (numpy's bools too)."""
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(f"{name} must be True or False, got {name}={value!r}")
  return bool(value)


def path(name: str, value: Any, *,
         allow_none: bool = True) -> Optional[Union[str, os.PathLike]]:
  """`value` if it is a path (a string or os.PathLike), or None when allowed."""
  if value is None and allow_none:
    return None
  if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value):
    raise TypeError(f"{name} must be a path (a non-empty string or os.PathLike)"
                    f"{' or None' if allow_none else ''}, got {name}={value!r}")
  return value


def file_name(name: str, value: Any) -> str:
  """`value` if it is a file name: a non-empty string with no folder in it."""
  if not isinstance(value, str) or value in ("", ".", "..") or "/" in value \
      or os.sep in value or (os.altsep and os.altsep in value):
    raise ValueError(f"{name} must be a file name without folders, got {name}={value!r}")
  return value


def function(name: str, value: Any, signature: str) -> Optional[Callable]:
  """`value` if it is callable or None; `signature` shows how it is called."""
  if value is not None and not callable(value):
    raise TypeError(f"{name} must be a function {signature} or None, got {name}={value!r}")
  return value


def prng_key(rng_key: Any) -> None:
  """Raises TypeError unless `rng_key` is one JAX PRNG key (shape and dtype only)."""
  dtype, shape = getattr(rng_key, "dtype", None), getattr(rng_key, "shape", None)
  if dtype == np.uint32 and shape == _raw_key_shape():
    return
  if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
    return
  got = (f"an array of shape {shape} and dtype {dtype}" if dtype is not None
         else f"{rng_key!r} (type {type(rng_key).__name__})")
  raise TypeError("rng_key must be one JAX PRNG key, jax.random.PRNGKey(seed) or "
                  f"jax.random.key(seed), got {got}")


@functools.lru_cache(maxsize=None)
def _raw_key_shape():
  return tuple(jax.eval_shape(lambda: jax.random.PRNGKey(0)).shape)


def array_of_numbers(obs: Any, what: str) -> np.ndarray:
  """`np.asarray(obs)`; ValueError naming `what` for ragged or non-array input."""
  try:
    return np.asarray(obs)
  except (TypeError, ValueError) as e:  # ragged nested lists, say
    raise ValueError(f"{what} must be an array of numbers: {e}") from None


def finite_numbers(obs: np.ndarray, what: str) -> None:
  """TypeError unless `obs` holds numbers; ValueError if it holds NaN or inf."""
  if obs.dtype.kind not in "biuf":
    raise TypeError(f"{what} must hold numbers, got dtype {obs.dtype}")
  if obs.dtype.kind == "f" and not np.isfinite(obs).all():
    raise ValueError(f"{what} contains NaN or inf")


def sample_batch(sample_input: Any) -> np.ndarray:
  """`init`'s sample as an array: a non-empty batch `[B, ...]` of finite numbers."""
  sample = array_of_numbers(sample_input, "sample_input")
  if sample.ndim < 1:
    raise ValueError("sample_input must be a batch of observations [B, ...], "
                     f"got a scalar of shape {sample.shape}")
  if sample.shape[0] < 1:
    raise ValueError(f"sample_input is an empty batch of shape {sample.shape}: give at "
                     "least one observation [1, ...]")
  finite_numbers(sample, "sample_input")
  return sample


def observations(obs: np.ndarray, obs_shape: Tuple[int, ...], from_batch: bool) -> None:
  """ValueError unless `obs[B, ...]` (one observation as a batch of 1 when not
  `from_batch`) has the model's `obs_shape`, is not empty and is finite."""
  what = "batch of observations" if from_batch else "observation"
  if obs.ndim < 1 or obs.shape[1:] != obs_shape:
    got = obs.shape if from_batch else obs.shape[1:]
    expected = ("[B, " + ", ".join(map(str, obs_shape)) + "]"
                if from_batch else str(obs_shape))
    raise ValueError(f"{what} has shape {got}, but the model was initialised for "
                     f"{expected}")
  if obs.shape[0] < 1:
    raise ValueError(f"{what} is an empty batch of shape {obs.shape}: give at least "
                     "one observation")
  finite_numbers(obs, what)


def network_functions(**functions: Any) -> None:
  """TypeError naming the first of `functions` (name=fn) that is not callable."""
  for name, fn in functions.items():
    if not callable(fn):
      raise TypeError(f"{name} must be a function building Haiku modules, got {fn!r}")


def optimizer(value: Any) -> None:
  """TypeError unless `value` is None or has optax's `init` and `update`."""
  if value is not None and not (callable(getattr(value, "init", None))
                                and callable(getattr(value, "update", None))):
    raise TypeError("optimizer must be an optax.GradientTransformation such as "
                    f"optax.adam(1e-3) (with init and update), got optimizer={value!r}")


def loss_fn(value: Any) -> None:
  """TypeError unless `value` is None or callable (`loss_fn(model, params, batch)`)."""
  if value is not None and not callable(value):
    raise TypeError(f"loss_fn must be a function loss_fn(model, params, batch), got "
                    f"loss_fn={value!r}")


def actions_in_range(a: np.ndarray, num_actions: int, what: str) -> None:
  """Host check that actions are integers in `[0, num_actions)`."""
  if a.dtype.kind not in "biuf":
    raise TypeError(f"batch.a must hold integer actions, got dtype {a.dtype}")
  if a.size == 0:
    return
  if a.dtype.kind == "f" and (np.floor(a) != a).any():
    bad = a[np.floor(a) != a].flat[0].item()
    raise ValueError(f"batch.a must hold integer actions, found {bad!r}")
  low, high = a.min(), a.max()
  if low < 0 or high >= num_actions:
    bad = (low if low < 0 else high).item()
    raise ValueError(f"batch.a holds action {bad!r} outside [0, num_actions) = "
                     f"[0, {num_actions}); {what} would train the dynamics on it silently")


# act's float search settings in the order `_plan` unpacks them, each with the
# values it accepts: (name, low, high, low is strict).
_SEARCH_BOUNDS = (("temperature", 0., np.inf, False), ("dirichlet_fraction", 0., 1., False),
                  ("dirichlet_alpha", 0., np.inf, True), ("pb_c_init", 0., np.inf, False),
                  ("pb_c_base", 0., np.inf, True), ("gumbel_scale", 0., np.inf, False))
_INF = float("inf")


def search_settings(*values: Any) -> np.ndarray:
  """`[6]` float32 search settings; ValueError naming the first bad one."""
  try:
    hyper = np.array(values, np.float32)
  except (TypeError, ValueError):
    hyper = None
  if hyper is not None and hyper.shape == (len(_SEARCH_BOUNDS),):
    # Plain float comparisons (act is a hot path); NaN fails every one.
    t, fraction, alpha, c_init, c_base, gumbel = hyper.tolist()
    if (0. <= t < _INF and 0. <= fraction <= 1. and 0. < alpha < _INF
        and 0. <= c_init < _INF and 0. < c_base < _INF and 0. <= gumbel < _INF):
      return hyper
  for (name, low, high, strict), value in zip(_SEARCH_BOUNDS, values):
    number(name, value, low=low, high=high, strict=strict,
                  what=f"a number {'>' if strict else '>='} {low:g}"
                  + (f" and <= {high:g}" if np.isfinite(high) else ""))
  raise TypeError("temperature and the search settings must be scalars, got "
                  + ", ".join(f"{b[0]}={v!r}" for b, v in zip(_SEARCH_BOUNDS, values)))
