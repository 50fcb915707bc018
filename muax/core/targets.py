"""N-step return targets on the device: the host tracer's, as pure functions.

The compiled loop steps its environments with automatic resets, so what it
records is a *stream* of steps in which episodes follow one another. For step
t of a stream `[T]` the target is `muax.episode_tracer.NStep`'s:

  Rn_t = r_t + g r_{t+1} + ... + g^{j-1} r_{t+j-1} + tail,

where j <= n is how many rewards the window holds before its episode ends and

- the window is complete (j = n, step t+n in the same episode): tail
  `g^n v_{t+n}`, `done` False;
- the episode terminated with step t+j-1: tail 0, `done` True;
- it was truncated (a time limit) after step t+j-1: tail `g^j
  bootstrap_value_{t+j-1}` (the value of the observation the limit cut off),
  `done` False.

`g` is the discount, or `-discount` for two-player streams (every reward and
value from the view of the player who acts at that step). A step whose window
runs past the end of the stream, with no episode end inside it, is not
`ready`: its target needs steps that are not recorded yet.

Everything is time-major `[T]`; `jax.vmap` over a batch of environments.
"""
from typing import NamedTuple

import chex
import jax.numpy as jnp


class NStepTargets(NamedTuple):
  """What `nstep_targets` returns for a stream of T steps."""
  Rn: chex.Array     # [T] float32 the n-step return target of each step
  done: chex.Array   # [T] bool the window reached a termination (no bootstrap)
  ready: chex.Array  # [T] bool the target is final (window complete or episode over)


def nstep_targets(r: chex.Array, v: chex.Array, terminated: chex.Array,
                  truncated: chex.Array, bootstrap_value: chex.Array, *, n: int,
                  discount: float, two_player: bool = False) -> NStepTargets:
  """The n-step targets of a stream of steps (see the module docstring).

  Args:
    r: `[T]` rewards.
    v: `[T]` search values of the observations acted in.
    terminated: `[T]` bool, the episode terminated with this step.
    truncated: `[T]` bool, a time limit cut the episode after this step (a
      step that also terminated counts as terminated).
    bootstrap_value: `[T]` value of the observation after this step, read
      where `truncated` (anything elsewhere).
    n: the number of rewards in a window (static).
    discount: the per-step discount.
    two_player: rewards and values alternate views (the discount is negated).

  Returns:
    `NStepTargets` of `[T]` arrays.
  """
  g = -discount if two_player else discount
  length = r.shape[0]
  pad = lambda x, value: jnp.concatenate(  # noqa: E731
      [x, jnp.full((n,), value, x.dtype)])
  r_, v_ = pad(r.astype(jnp.float32), 0.), pad(v.astype(jnp.float32), 0.)
  term = pad(terminated.astype(bool), False)
  trunc = pad(truncated.astype(bool), False) & ~term
  boot = pad(bootstrap_value.astype(jnp.float32), 0.)
  recorded = pad(jnp.ones((length,), bool), False)
  t = jnp.arange(length)

  total = jnp.zeros((length,), jnp.float32)
  open_ = jnp.ones((length,), bool)   # no episode end yet in steps t..t+i-1
  done = jnp.zeros((length,), bool)
  ready = jnp.zeros((length,), bool)
  for i in range(n):
    at = t + i
    here = open_ & recorded[at]
    total = total + jnp.where(here, g ** i * r_[at], 0.)
    ends_term = here & term[at]
    ends_trunc = here & trunc[at]
    total = total + jnp.where(ends_trunc, g ** (i + 1) * boot[at], 0.)
    done = done | ends_term
    ready = ready | ends_term | ends_trunc
    open_ = here & ~ends_term & ~ends_trunc
  complete = open_ & recorded[t + n]
  total = total + jnp.where(complete, g ** n * v_[t + n], 0.)
  return NStepTargets(Rn=total, done=done, ready=ready | complete)


def priorities(v: chex.Array, rn: chex.Array, alpha: float) -> chex.Array:
  """`|v - Rn| ** alpha`, `PNStep`'s priority of each step."""
  return jnp.abs(v.astype(jnp.float32) - rn) ** alpha
