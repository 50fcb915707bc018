"""muax.checks: one helper per kind of argument, and the wording every caller shares."""
import numpy as np
import pytest

from muax import checks


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "3", None])
def test_positive_int_refuses_with_the_name_and_value(value):
  with pytest.raises(ValueError, match=rf"^n must be a positive integer, got n={value!r}$"):
    checks.positive_int("n", value)


def test_integer_accepts_numpy_ints_and_returns_python_ints():
  out = checks.integer("n", np.int64(3), low=0)
  assert out == 3 and type(out) is int
  assert checks.positive_int("n", None, allow_none=True) is None
  assert checks.positive_int("n", 0, allow_zero=True) == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(low=0), "n must be a non-negative integer, got n=-1"),
    (dict(low=2), "n must be an integer >= 2, got n=-1"),
    (dict(allow_none=True), "n must be a positive integer or None, got n=-1"),
    (dict(what="a stride >= 1"), "n must be a stride >= 1, got n=-1"),
    (dict(label="Config n", echo_name=False), "Config n must be a positive integer, got -1"),
])
def test_integer_wording(kwargs, message):
  with pytest.raises(ValueError) as info:
    checks.integer("n", -1, **kwargs)
  assert str(info.value) == message


def test_number_types_and_ranges():
  assert checks.number("x", np.float32(0.5), low=0., high=1., what="p") == 0.5
  with pytest.raises(TypeError, match="x must be p, got x='a'"):
    checks.number("x", "a", what="p")
  with pytest.raises(ValueError, match="x must be p, got x='a'"):
    checks.number("x", "a", what="p", not_a_number=ValueError)
  for bad in (float("nan"), float("inf"), 0.):
    with pytest.raises(ValueError):
      checks.number("x", bad, low=0., strict=True, what="p")
  with pytest.raises(ValueError, match=r"^R x must be p, got 2\.0$"):
    checks.number("x", 2., high=1., what="p", label="R x", echo_name=False)


def test_seed_bounds():
  assert checks.seed("seed", np.uint64(2 ** 63 - 1)) == 2 ** 63 - 1
  for bad in (-1, 2 ** 63, True, 1.0):
    with pytest.raises(ValueError, match="seed must be an integer in"):
      checks.seed("seed", bad)
