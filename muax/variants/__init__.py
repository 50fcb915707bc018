"""The registry of algorithms: what `MuZero(policy=...)` builds, and what each supports.

Each algorithm registers once, with the class that implements it and the
options it combines with (reanalysis, value prefix, two-player games, action
masks, image observations). Every "does this policy support X" question is
answered here, never by comparing policy names elsewhere.

This module imports nothing of muax: the implementations register themselves
when `muax` is imported (`muax.model` registers 'muzero' and 'gumbel',
`muax.stochastic` and `muax.sampled` theirs).
"""
import dataclasses
from typing import Dict, Optional, Tuple

__all__ = ["OPTIONS", "Variant", "get", "names", "option_class", "register",
           "register_option_class", "require", "supporting", "unregister"]

# The options a variant may support, each with how messages name it.
OPTIONS = {"reanalysis": "reanalyze", "value_prefix": "value_prefix",
           "two_player": "two_player=True", "masks": "invalid_actions",
           "images": "image observations", "consistency": "consistency"}


@dataclasses.dataclass(frozen=True)
class Variant:
  """One registered algorithm."""
  name: str  # the `policy` argument of `MuZero`
  model_class: type  # the class `MuZero(policy=name)` builds
  search_policy: Optional[str]  # the mctx policy (muax.core.search); None: the model's
  supports: Tuple[str, ...]  # the OPTIONS it combines with


_REGISTRY: Dict[str, Variant] = {}


def register(name: str, model_class: type, *, search_policy: Optional[str] = None,
             supports=()) -> Variant:
  """Registers (or re-registers) the algorithm `name`.

  Args:
    name: the `policy` argument that selects it.
    model_class: `muax.MuZero` or a class derived from it.
    search_policy: 'muzero', 'gumbel' or 'stochastic' (`muax.core.search.run`);
      None when the model chooses (Sampled MuZero's `search_policy`).
    supports: the OPTIONS it combines with.
  """
  unknown = set(supports) - set(OPTIONS)
  if unknown:
    raise ValueError(f"unknown options {sorted(unknown)}: choose from {sorted(OPTIONS)}")
  variant = Variant(name, model_class, search_policy, tuple(supports))
  _REGISTRY[name] = variant
  return variant


_OPTION_CLASSES: Dict[str, type] = {}


def register_option_class(option: str, model_class: type):
  """Registers the class `MuZero(..., <option>=True)` builds (value_prefix)."""
  _OPTION_CLASSES[option] = model_class


def option_class(option: str):
  """The class registered for `option`, or None."""
  return _OPTION_CLASSES.get(option)


def unregister(name: str):
  """Removes the algorithm `name` (a test's own variant, say)."""
  _REGISTRY.pop(name, None)


def names() -> Tuple[str, ...]:
  """The registered policies, in registration order."""
  return tuple(_REGISTRY)


def get(policy) -> Variant:
  """The variant of `policy`.

  Raises:
    ValueError: an unknown policy (the message lists the known ones).
  """
  if not isinstance(policy, str) or policy not in _REGISTRY:
    raise ValueError(f"unknown policy {policy!r}: choose one of {names()}")
  return _REGISTRY[policy]


def supporting(option: str) -> Tuple[str, ...]:
  """The policies that support `option`."""
  return tuple(v.name for v in _REGISTRY.values() if option in v.supports)


def require(policy: str, option: str, *, what: str = None):
  """Raises ValueError unless `policy` supports `option`; the message says
  which policies do (`what` names the option, OPTIONS' name by default)."""
  if option in get(policy).supports:
    return
  allowed = " or ".join(f"'{p}'" for p in supporting(option))
  raise ValueError(f"{what or OPTIONS[option]} works with policy {allowed}, not "
                   f"policy={policy!r}")
