"""Runtime settings muax applies to JAX on import, and how to undo them.

Where the CPU time of a search goes on today's JAX (measured with
`benchmarks/selfplay_speed.py` and the profile described in the README):
XLA's CPU runtime runs a compiled program as a sequence of "thunks" (one per
fused kernel, plus one per loop iteration), each costing about a microsecond
of overhead on a small batch. JAX lowers the Threefry PRNG on CPU as a rolled
5-iteration loop of ~16 kernels, to save compile time; mctx draws random
numbers at every level of every tree traversal (tie-breaking noise), so at
one observation and 50 simulations these loops were half the search's time.
muax registers JAX's own unrolled Threefry lowering for CPU instead (the one
JAX uses on GPU): the same bits, one fused kernel per call, at the cost of a
longer first compile.

Turn it off with the environment variable `MUAX_XLA_TUNING=0` before importing
muax, or at run time with `muax.runtime.unrolled_threefry(False)` (it applies
to functions compiled afterwards).
"""
import importlib
import os

__all__ = ["unrolled_threefry", "tuning_enabled"]

_MODULES = ("jax._src.random.threefry2x32", "jax._src.prng")
_state = {"rolled_rule": None, "unrolled": False}


def tuning_enabled() -> bool:
  """False when the user set `MUAX_XLA_TUNING=0` (or 'false', 'off')."""
  return os.environ.get("MUAX_XLA_TUNING", "1").strip().lower() not in ("0", "false", "off",
                                                                        "no")


def _threefry_module():
  for name in _MODULES:
    try:
      module = importlib.import_module(name)
    except ImportError:
      continue
    if hasattr(module, "threefry2x32_p") and hasattr(module, "_threefry2x32_lowering_rule"):
      return module
  return None


def unrolled_threefry(enabled: bool = True) -> bool:
  """Lowers Threefry on CPU unrolled (`True`) or as JAX's rolled loop.

  Only the compiled code changes, never the random numbers. Returns whether
  the setting took effect: False when this JAX version keeps its lowering
  elsewhere (then nothing is changed).
  """
  module = _threefry_module()
  if module is None:
    return False
  from jax._src.interpreters import mlir
  if enabled:
    rule = module._threefry2x32_lowering_rule
  else:
    rule = getattr(module, "_threefry2x32_cpu_lowering_rule", None)
    if rule is None:
      return False
  mlir.register_lowering(module.threefry2x32_p, rule, platform="cpu")
  _state["unrolled"] = bool(enabled)
  return True


def is_threefry_unrolled() -> bool:
  """Whether muax's unrolled Threefry lowering is active."""
  return _state["unrolled"]


def apply_defaults():
  """Applies muax's defaults unless `MUAX_XLA_TUNING=0`."""
  if tuning_enabled():
    unrolled_threefry(True)
