"""The registry of algorithms: what `MuZero(policy=...)` builds, and what each supports.

Each algorithm registers once: the `make(model) -> Variant` that builds its
functions (`muax.core.variant.Variant`), the class `MuZero(policy=...)` builds
(`muax.MuZero` itself unless the algorithm takes more arguments), and the
options it combines with (reanalysis, value prefix, two-player games, action
masks, image observations). Every "does this policy support X" question is
answered here, never by comparing policy names elsewhere.

'muzero' and 'gumbel' are registered here (`muax.variants.muzero`);
`muax.stochastic` and `muax.sampled` register theirs, and `muax.value_prefix`
the value-prefix option, when `muax` is imported. A new algorithm is a `make`
and one `register` line (`tests/test_variants.py` defines one).
"""
import dataclasses
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from muax.core.variant import Variant

__all__ = ["OPTIONS", "Registration", "Variant", "check_choice", "get", "names", "option",
           "register", "register_option", "require", "supporting", "unregister"]

# The options a variant may support, each with how messages name it.
OPTIONS = {"reanalysis": "reanalyze", "value_prefix": "value_prefix",
           "two_player": "two_player=True", "masks": "invalid_actions",
           "images": "image observations", "consistency": "consistency"}


@dataclasses.dataclass(frozen=True)
class Registration:
  """One registered algorithm (or option)."""
  name: str  # the `policy` argument of `MuZero` (or the option's keyword)
  make: Callable  # make(model) -> Variant, called once per model
  model_class: Optional[type]  # the class `MuZero(policy=name)` builds; None: MuZero
  supports: Tuple[str, ...]  # the OPTIONS it combines with


_REGISTRY: Dict[str, Registration] = {}


def register(name: str, make: Callable, *, model_class: Optional[type] = None,
             supports: Sequence[str] = ()) -> Registration:
  """Registers (or re-registers) the algorithm `name`.

  Args:
    name: the `policy` argument that selects it.
    make: `make(model) -> muax.core.variant.Variant`, given the model under
      construction (its networks and settings).
    model_class: the class `MuZero(policy=name)` builds, for algorithms that
      take more arguments (Stochastic MuZero's networks); None: `muax.MuZero`.
    supports: the OPTIONS it combines with.
  """
  unknown = set(supports) - set(OPTIONS)
  if unknown:
    raise ValueError(f"unknown options {sorted(unknown)}: choose from {sorted(OPTIONS)}")
  if not callable(make):
    raise TypeError(f"make must be a function make(model) -> Variant, got {make!r}")
  entry = Registration(name, make, model_class, tuple(supports))
  _REGISTRY[name] = entry
  return entry


_OPTIONS: Dict[str, Registration] = {}


def register_option(option: str, make: Callable, *, model_class: type) -> None:
  """Registers what `MuZero(..., <option>=True)` builds (value_prefix): the
  class, and `make(model) -> Variant` replacing the policy's."""
  _OPTIONS[option] = Registration(option, make, model_class, ())


def option(name: str) -> Optional[Registration]:
  """The registration of option `name`, or None."""
  return _OPTIONS.get(name)


def unregister(name: str) -> None:
  """Removes the algorithm `name` (a test's own variant, say)."""
  _REGISTRY.pop(name, None)


def names() -> Tuple[str, ...]:
  """The registered policies, in registration order."""
  return tuple(_REGISTRY)


def get(policy: str) -> Registration:
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


def require(policy: str, option: str, *, what: Optional[str] = None) -> None:
  """Raises ValueError unless `policy` supports `option`; the message says
  which policies do (`what` names the option, OPTIONS' name by default)."""
  if option in get(policy).supports:
    return
  allowed = " or ".join(f"'{p}'" for p in supporting(option))
  raise ValueError(f"{what or OPTIONS[option]} works with policy {allowed}, not "
                   f"policy={policy!r}")


def model_class(cls: type, base: type, args: tuple, kwargs: dict) -> type:
  """The class `cls(*args, **kwargs)` builds: for the façade `base` itself,
  the class registered for its `policy` (argument 4) or for `value_prefix=True`
  (one that takes that algorithm's extra arguments), else `cls`."""
  if cls is not base:
    return cls
  policy = kwargs.get("policy", args[3] if len(args) > 3 else "muzero")
  if isinstance(policy, str) and policy in _REGISTRY and get(policy).model_class:
    return get(policy).model_class
  prefix = option("value_prefix")
  if kwargs.get("value_prefix") is True and prefix is not None:
    return prefix.model_class
  return cls


def check_choice(model: Any, policy: str, *, two_player: bool,
                 value_prefix: bool) -> Callable:
  """Checks `MuZero(policy=..., two_player=..., value_prefix=...)` for `model`,
  the instance under construction; returns the `make` of its `Variant`.

  Raises:
    ValueError: an unknown policy, value_prefix on a policy without it (or
      not a bool), two_player on a policy without it, or a class that is not
      the one the policy builds.
    TypeError: two_player that is not a bool.
  """
  prefix = option("value_prefix")
  if value_prefix is not False and (prefix is None or type(model) is not prefix.model_class):
    allowed = " or ".join(f"'{p}'" for p in supporting("value_prefix"))
    raise ValueError(f"value_prefix must be True or False, and works with policy "
                     f"{allowed}; got value_prefix={value_prefix!r} with "
                     f"policy={policy!r}")
  entry = get(policy)
  if entry.model_class is not None and not isinstance(model, entry.model_class):
    raise ValueError(f"unknown policy {policy!r}: choose one of {names()}")
  if not isinstance(two_player, (bool, np.bool_)):
    raise TypeError(f"two_player must be True or False, got two_player={two_player!r}")
  if two_player and "two_player" not in entry.supports:
    raise ValueError(f"policy={policy!r} does not support two_player=True")
  return (prefix if value_prefix else entry).make


def _register_muzero():
  from muax.variants import muzero  # noqa: PLC0415 (muzero imports this package's core types only)
  for name in ("muzero", "gumbel"):
    register(name, muzero.make,
             supports=("reanalysis", "value_prefix", "two_player", "masks", "images",
                       "consistency"))


_register_muzero()
