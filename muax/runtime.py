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

Second, XLA's copy insertion on CPU adds copies of loop-carried arrays (the
search tree) in every simulation unless it runs its region analysis; muax
adds `--xla_cpu_copy_insertion_use_region_analysis=true` to `XLA_FLAGS`
(about 15-20% off a search). Flags are read when JAX starts its CPU backend,
so this applies only when muax is imported before JAX first computes
anything, and only on jaxlib versions known to have the flag (0.4.35 to
0.10.x: an unknown flag would abort the process). A flag the user already
set in `XLA_FLAGS` is left as the user set it.

Turn both off with the environment variable `MUAX_XLA_TUNING=0` before
importing muax; the Threefry lowering can also be switched at run time with
`muax.runtime.unrolled_threefry(False)` (it applies to functions compiled
afterwards).
"""
import importlib
import os
import re

__all__ = ["XLA_FLAGS", "applied_xla_flags", "tuning_enabled", "unrolled_threefry"]

# Flags muax adds to XLA_FLAGS, and the jaxlib versions known to accept them.
XLA_FLAGS = ("--xla_cpu_copy_insertion_use_region_analysis=true",)
_FLAG_VERSIONS = ((0, 4, 35), (0, 11, 0))

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


def _jaxlib_version():
  try:
    import jaxlib
    version = jaxlib.__version__
  except (ImportError, AttributeError):
    return None
  return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def _backend_started() -> bool:
  try:
    from jax._src import xla_bridge
  except ImportError:
    return True
  return bool(getattr(xla_bridge, "_backends", None))


def add_xla_flags() -> list:
  """Adds muax's XLA flags to `XLA_FLAGS` if they can still take effect.

  Returns the flags added (none when the backend has started, the jaxlib
  version is outside the known range, or the user set the flag already).
  """
  version = _jaxlib_version()
  if version is None or not _FLAG_VERSIONS[0] <= version < _FLAG_VERSIONS[1]:
    return []
  if _backend_started():
    return []
  current = os.environ.get("XLA_FLAGS", "")
  added = [f for f in XLA_FLAGS if f.split("=")[0] not in current]
  if added:
    os.environ["XLA_FLAGS"] = " ".join([current] + added).strip()
  _state["flags"] = added
  return added


def applied_xla_flags() -> list:
  """The XLA flags muax added in this process."""
  return list(_state.get("flags", []))


def apply_defaults() -> None:
  """Applies muax's defaults unless `MUAX_XLA_TUNING=0`."""
  if tuning_enabled():
    add_xla_flags()
    unrolled_threefry(True)
