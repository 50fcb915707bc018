"""Argument checks shared by the public API: one wording for one mistake."""
import os

import numpy as np

_MAX_SEED = 2 ** 63  # what jax.random.PRNGKey and numpy's generators accept


def positive_int(name: str, value, *, allow_zero: bool = False,
                 allow_none: bool = False):
  """`int(value)` if it is a positive (or, with `allow_zero`, non-negative) integer.

  Raises:
    ValueError: naming `name` and `value`; bools are refused.
  """
  if allow_none and value is None:
    return None
  low = 0 if allow_zero else 1
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    kind = "a non-negative" if allow_zero else "a positive"
    none = " or None" if allow_none else ""
    raise ValueError(f"{name} must be {kind} integer{none}, got {name}={value!r}")
  return int(value)


def number(name: str, value, *, low=-np.inf, high=np.inf, strict: bool = False,
           what: str) -> float:
  """`float(value)` if it is a finite real number in `[low, high]` (`(low, high]`
  when `strict`).

  Raises:
    TypeError: not a number (bools and strings included), naming `name` and
      `value`.
    ValueError: NaN, infinite or out of range.
  """
  if isinstance(value, (bool, str, bytes)):
    raise TypeError(f"{name} must be {what}, got {name}={value!r}")
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise TypeError(f"{name} must be {what}, got {name}={value!r}") from None
  if not (np.isfinite(x) and (x > low if strict else x >= low) and x <= high):
    raise ValueError(f"{name} must be {what}, got {name}={value!r}")
  return x


def seed(name: str, value) -> int:
  """`int(value)` if it is an integer in [0, 2**63), what every random
  generator muax seeds accepts."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
      or not 0 <= value < _MAX_SEED:
    raise ValueError(f"{name} must be an integer in [0, 2**63), got {name}={value!r}")
  return int(value)


def flag(name: str, value) -> bool:
  """`bool(value)` if it is True or False (numpy's bools too)."""
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(f"{name} must be True or False, got {name}={value!r}")
  return bool(value)


def path(name: str, value, *, allow_none: bool = True):
  """`value` if it is a path (a string or os.PathLike), or None when allowed."""
  if value is None and allow_none:
    return None
  if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value):
    raise TypeError(f"{name} must be a path (a non-empty string or os.PathLike)"
                    f"{' or None' if allow_none else ''}, got {name}={value!r}")
  return value


def file_name(name: str, value) -> str:
  """`value` if it is a file name: a non-empty string with no folder in it."""
  if not isinstance(value, str) or value in ("", ".", "..") or "/" in value \
      or os.sep in value or (os.altsep and os.altsep in value):
    raise ValueError(f"{name} must be a file name without folders, got {name}={value!r}")
  return value


def function(name: str, value, signature: str):
  """`value` if it is callable or None; `signature` shows how it is called."""
  if value is not None and not callable(value):
    raise TypeError(f"{name} must be a function {signature} or None, got {name}={value!r}")
  return value
