"""Argument checks shared by the public API: one wording for one mistake."""
import numpy as np


def positive_int(name: str, value, *, allow_zero: bool = False) -> int:
  """`int(value)` if it is a positive (or, with `allow_zero`, non-negative) integer.

  Raises:
    ValueError: naming `name` and `value`; bools are refused.
  """
  low = 0 if allow_zero else 1
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    kind = "a non-negative" if allow_zero else "a positive"
    raise ValueError(f"{name} must be {kind} integer, got {name}={value!r}")
  return int(value)
