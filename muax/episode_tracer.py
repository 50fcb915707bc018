"""N-step tracers: turn a stream of steps into transitions with return targets.

The n-step target of step t (Sutton & Barto, 2018, ch. 7) is

  Rn_t = r_t + g r_{t+1} + ... + g^{n-1} r_{t+n-1} + g^n v_{t+n},

truncated at the end of the episode. When the episode *terminates* the tail is
zero (`done=True` on the popped transition: not bootstrapped). When it is only
*truncated* (a time limit), the tail is the value of the observation after the
last step, passed as `bootstrap_value`, and `done` stays False.
"""
import collections
from typing import Optional

import numpy as np

from muax.transition import Transition

__all__ = ["NStep", "PNStep", "Transition"]


class NStep:
  """Caches the last `n` steps and emits transitions with n-step returns.

  Usage: `add` every step; `while tracer: trajectory.add(tracer.pop())`.
  """

  def __init__(self, n: int, gamma: float):
    if not isinstance(n, (int, np.integer)) or n < 1:
      raise ValueError(f"n must be a positive integer, got n={n!r}")
    if not 0. <= float(gamma) <= 1.:
      raise ValueError(f"gamma must be in [0, 1], got gamma={gamma!r}")
    self.n = int(n)
    self.gamma = float(gamma)
    self.reset()

  def reset(self):
    """Forgets everything cached: call at the start of an episode."""
    self._cache = collections.deque()
    self._ready = collections.deque()

  def add(self, obs, a, r, done, v=0., pi=0., w=1., *, truncated: bool = False,
          bootstrap_value: Optional[float] = None):
    """Records one step.

    Args:
      obs: observation the action was taken in.
      a: action taken.
      r: reward received.
      done: True when the episode terminated with this step.
      v: search value of `obs`.
      pi: search policy at `obs`, `[num_actions]`.
      w: priority (NStep keeps it; PNStep recomputes it).
      truncated: True when the episode was cut by a time limit after this step
        (and did not terminate): the remaining returns are bootstrapped.
      bootstrap_value: value of the observation after this step; required when
        `truncated` and not `done`.
    """
    r = float(r)
    if not np.isfinite(r):
      raise ValueError(f"reward must be finite, got r={r!r}")
    if truncated and not done and bootstrap_value is None:
      raise ValueError("truncated=True needs bootstrap_value: the value of the "
                       "observation after this step")
    self._cache.append((obs, a, r, bool(done), float(v), pi, float(w)))
    # A step whose n-step window is complete bootstraps from v[t+n], even when
    # the episode ends right after: v[t+n] is a value of a real state.
    if len(self._cache) > self.n:
      rewards = [step[2] for step in self._cache]
      tail = self._cache[self.n][4]
      self._emit(self._discounted(rewards[:self.n]) + self.gamma ** self.n * tail,
                 done=False)
    if done:
      self._flush(0.)
    elif truncated:
      self._flush(float(bootstrap_value), bootstrapped=True)

  def pop(self) -> Transition:
    """Returns the oldest ready transition; raises IndexError when none is."""
    if not self._ready:
      raise IndexError("no transition is ready: check `bool(tracer)` before pop()")
    return self._ready.popleft()

  def __len__(self):
    return len(self._cache) + len(self._ready)

  def __bool__(self):
    return bool(self._ready)

  def _flush(self, tail_value: float, bootstrapped: bool = False):
    while self._cache:
      rewards = [step[2] for step in self._cache]
      tail = self.gamma ** len(rewards) * tail_value
      self._emit(self._discounted(rewards) + tail, done=not bootstrapped)

  def _discounted(self, rewards):
    return sum(self.gamma ** i * r for i, r in enumerate(rewards))

  def _emit(self, rn: float, done: bool):
    obs, a, r, _, v, pi, w = self._cache.popleft()
    self._ready.append(Transition(obs=obs, a=a, r=r, done=done, Rn=rn, v=v,
                                  pi=pi, w=self._priority(v, rn, w)))

  def _priority(self, v, rn, w):
    del v, rn
    return w


class PNStep(NStep):
  """`NStep` whose transitions carry priority `w = |v - Rn| ** alpha`."""

  def __init__(self, n: int, gamma: float, alpha: float = 0.5):
    super().__init__(n, gamma)
    if float(alpha) < 0.:
      raise ValueError(f"alpha must be >= 0, got alpha={alpha!r}")
    self.alpha = float(alpha)

  def _priority(self, v, rn, w):
    del w
    return abs(v - rn) ** self.alpha
