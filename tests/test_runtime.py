"""muax's JAX runtime settings change compiled code, never results."""
import os
import subprocess
import sys

import jax
import numpy as np

import muax
from muax import runtime


def _draws():
  # A fresh function each time so it is compiled under the current lowering.
  @jax.jit
  def draw(key):
    keys = jax.random.split(key, 3)
    return jax.random.uniform(keys[0], (5,)), jax.random.categorical(keys[1], np.zeros(4)), \
        jax.random.fold_in(keys[2], 7)
  return jax.device_get(draw(jax.random.PRNGKey(3)))


def test_unrolled_threefry_gives_the_same_numbers():
  assert runtime.is_threefry_unrolled()  # applied by `import muax`
  unrolled = _draws()
  try:
    assert runtime.unrolled_threefry(False)
    assert not runtime.is_threefry_unrolled()
    rolled = _draws()
  finally:
    runtime.unrolled_threefry(True)
  for a, b in zip(unrolled, rolled):
    np.testing.assert_array_equal(a, b)


def test_unrolled_threefry_removes_the_loops_from_compiled_code():
  def hlo():
    return jax.jit(lambda k: jax.random.uniform(k, (3,))).lower(
        jax.random.PRNGKey(0)).as_text()
  assert "while" not in hlo()
  try:
    runtime.unrolled_threefry(False)
    assert "while" in hlo()
  finally:
    runtime.unrolled_threefry(True)


def test_env_variable_turns_tuning_off():
  code = "import muax; print(muax.runtime.is_threefry_unrolled())"
  env = dict(os.environ, MUAX_XLA_TUNING="0")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                       text=True, check=True)
  assert out.stdout.strip() == "False"
  assert muax.runtime.tuning_enabled()  # this process keeps the default


def _run(code, **env):
  out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                       capture_output=True, text=True, check=True)
  return out.stdout.strip()


PRINT_FLAGS = ("import muax, os; print(muax.runtime.applied_xla_flags(), "
               "os.environ.get('XLA_FLAGS', ''))")


def test_xla_flags_added_before_the_backend_starts():
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = subprocess.run([sys.executable, "-c", PRINT_FLAGS], env=env, capture_output=True,
                       text=True, check=True).stdout
  assert "--xla_cpu_copy_insertion_use_region_analysis=true" in out
  # Too late once JAX has computed: nothing added, nothing breaks.
  late = subprocess.run(
      [sys.executable, "-c", "import jax; jax.numpy.ones(2).block_until_ready(); "
       + PRINT_FLAGS], env=env, capture_output=True, text=True, check=True).stdout
  assert late.strip() == "[]"


def test_user_xla_flags_win_and_tuning_can_be_turned_off():
  mine = "--xla_cpu_copy_insertion_use_region_analysis=false"
  assert _run(PRINT_FLAGS, XLA_FLAGS=mine) == f"[] {mine}"
  assert _run(PRINT_FLAGS, XLA_FLAGS="", MUAX_XLA_TUNING="off") == "[]"
