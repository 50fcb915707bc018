"""N-step tracers: turn a stream of steps into transitions with return targets.

The n-step target of step t (Sutton & Barto, 2018, ch. 7) is

  Rn_t = r_t + g r_{t+1} + ... + g^{n-1} r_{t+n-1} + g^n v_{t+n},

truncated at the end of the episode. When the episode *terminates* the tail is
zero (`done=True` on the popped transition: not bootstrapped). When it is only
*truncated* (a time limit), the tail is the value of the observation after the
last step, passed as `bootstrap_value`, and `done` stays False.
"""
import collections
from typing import Optional, Union

import numpy as np

from muax import checks
from muax.transition import Transition

__all__ = ["NStep", "PNStep", "Transition"]


class NStep:
  """Caches the last `n` steps and emits transitions with n-step returns.

  Usage: `add` every step; `while tracer: trajectory.add(tracer.pop())`.

  With `two_player=True` (alternating zero-sum games, one tracer for both
  players) every reward and value is from the view of the player who acts at
  that step, so the return of step t alternates signs:
  `Rn_t = r_t - g r_{t+1} + g^2 r_{t+2} - ... +- g^n v_{t+n}`, the target from
  the view of the player to move at t.
  """

  def __init__(self, n: int, gamma: float, *, two_player: bool = False):
    checks.positive_int("n", n)
    if not 0. <= _real("gamma", gamma) <= 1.:
      raise ValueError(f"gamma must be in [0, 1], got gamma={gamma!r}")
    if not isinstance(two_player, (bool, np.bool_)):
      raise TypeError(f"two_player must be True or False, got two_player={two_player!r}")
    self.n = int(n)
    self.gamma = float(gamma)
    self.two_player = bool(two_player)
    self.reset()

  @property
  def step_discount(self) -> float:
    """Discount from one step to the next in `Rn`: `gamma`, or `-gamma` for
    two-player tracers (the next step's reward and value are the opponent's)."""
    return -self.gamma if self.two_player else self.gamma

  _step_discount = step_discount

  def reset(self) -> None:
    """Forgets everything cached: call at the start of an episode."""
    self._cache = collections.deque()
    self._ready = collections.deque()
    self._obs_shape = None  # shapes of the first step, that later steps must keep
    self._pi_shape = None

  def add(self, obs: np.ndarray, a: Union[int, np.ndarray], r: float, done: bool,
          v: float = 0., pi: Union[float, np.ndarray] = 0., w: float = 1., *,
          truncated: bool = False, bootstrap_value: Optional[float] = None,
          mask: Optional[np.ndarray] = None,
          candidates: Optional[np.ndarray] = None) -> None:
    """Records one step.

    After a step with `done` (or `truncated`) every cached step is flushed, so
    the next `add` starts a new episode even without `reset()`.

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
      mask: legal actions at `obs` (1 = legal), `[num_actions]`; stored on
        the transition (replay keeps it to mask the policy target).
      candidates: the sampled actions `[K, action_dim]` a Sampled MuZero
        search chose among; `pi` is then over these K, and `a` the action
        vector taken.

    Raises:
      ValueError: a non-finite reward, value, priority or policy, a negative
        priority, an action that is not an integer in `[0, len(pi))`, or an
        observation or policy whose shape differs from the first step's.
    """
    r = _real("reward", r, "r")
    v = _real("value", v, "v")
    w = _real("priority", w, "w")
    if w < 0.:
      raise ValueError(f"priority must be >= 0, got w={w!r}")
    if truncated and not done:
      if bootstrap_value is None:
        raise ValueError("truncated=True needs bootstrap_value: the value of the "
                         "observation after this step")
      _real("bootstrap_value", bootstrap_value, "bootstrap_value")
    extras = self._check_step(obs, a, pi, mask, candidates)
    self._cache.append((obs, a, r, bool(done), v, pi, w, extras))
    # A step whose n-step window is complete bootstraps from v[t+n], even when
    # the episode ends right after: v[t+n] is a value of a real state.
    if len(self._cache) > self.n:
      rewards = [step[2] for step in self._cache]
      tail = self._cache[self.n][4]
      self._emit(self._discounted(rewards[:self.n]) + self._step_discount ** self.n * tail,
                 done=False)
    if done:
      self._flush(0.)
    elif truncated:
      self._flush(float(bootstrap_value), bootstrapped=True)

  def _check_step(self, obs, a, pi, mask=None, candidates=None) -> dict:
    """Action in range, policy finite, shapes as on the episode's first step;
    returns the optional fields given."""
    obs_shape, pi_shape = np.shape(obs), np.shape(pi)
    if self._obs_shape is None:
      self._obs_shape, self._pi_shape = obs_shape, pi_shape
    if obs_shape != self._obs_shape:
      raise ValueError(f"obs has shape {obs_shape}, but earlier steps had "
                       f"{self._obs_shape}; call reset() between environments")
    if pi_shape != self._pi_shape:
      raise ValueError(f"pi has shape {pi_shape}, but earlier steps had {self._pi_shape} "
                       "(a different number of actions)")
    pi_array = np.asarray(pi, np.float64)
    if not np.isfinite(pi_array).all():
      raise ValueError(f"pi must be finite, got pi={pi!r}")
    extras = {}
    action = np.asarray(a)
    if candidates is not None:
      cands = np.asarray(candidates, np.float32)
      if cands.ndim != 2 or pi_array.shape != (cands.shape[0],):
        raise ValueError(f"candidates must be [K, action_dim] with K = len(pi), got shape "
                         f"{cands.shape} for pi of shape {pi_array.shape}")
      if action.shape != (cands.shape[1],) or action.dtype.kind not in "iuf" or \
          not np.isfinite(action).all() or not np.isfinite(cands).all():
        raise ValueError(f"with candidates the action must be a finite vector "
                         f"[{cands.shape[1]}], got a={a!r}")
      extras["candidates"] = cands
    else:
      if action.ndim != 0 or action.dtype.kind not in "iuf" or not action >= 0 or (
          action.dtype.kind == "f" and action != np.floor(action)):
        raise ValueError(f"a must be a non-negative integer action, got a={a!r}")
      if pi_array.ndim == 1 and action >= len(pi_array):
        raise ValueError(f"a={a!r} is out of range for pi with {len(pi_array)} actions")
    if mask is not None:
      legal = np.asarray(mask)
      if legal.shape != pi_array.shape or not np.isin(legal, (0, 1)).all():
        raise ValueError(f"mask must hold 0/1 (1 = legal) with the shape of pi "
                         f"{pi_array.shape}, got {mask!r}")
      extras["mask"] = legal.astype(bool)
    return extras

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
      tail = self._step_discount ** len(rewards) * tail_value
      self._emit(self._discounted(rewards) + tail, done=not bootstrapped)

  def _discounted(self, rewards):
    return sum(self._step_discount ** i * r for i, r in enumerate(rewards))

  def _emit(self, rn: float, done: bool):
    obs, a, r, _, v, pi, w, extras = self._cache.popleft()
    self._ready.append(Transition(obs=obs, a=a, r=r, done=done, Rn=rn, v=v,
                                  pi=pi, w=self._priority(v, rn, w), **extras))

  def _priority(self, v, rn, w):
    del v, rn
    return w


class PNStep(NStep):
  """`NStep` whose transitions carry priority `w = |v - Rn| ** alpha`."""

  def __init__(self, n: int, gamma: float, alpha: float = 0.5, *, two_player: bool = False):
    super().__init__(n, gamma, two_player=two_player)
    if _real("alpha", alpha) < 0.:
      raise ValueError(f"alpha must be >= 0, got alpha={alpha!r}")
    self.alpha = float(alpha)

  def _priority(self, v, rn, w):
    del w
    return abs(v - rn) ** self.alpha


def _real(what: str, value, name: str = None) -> float:
  """`float(value)`; ValueError unless it is a finite real number."""
  name = name or what
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{what} must be a finite number, got {name}={value!r}") from None
  if not np.isfinite(x):
    raise ValueError(f"{what} must be finite, got {name}={value!r}")
  return x
