"""Sampled MuZero (Hubert et al., 2021) for continuous (gymnasium Box) actions.

"Learning and Planning in Complex Action Spaces" searches over a small set of
actions sampled from a proposal `beta` at every node instead of over the whole
action space. mctx plans over a fixed number of discrete branches, so each node
here carries K actions drawn from the learned policy (`beta = pi`) inside its
embedding, `(s, candidates[B, K, D])`, and mctx searches over the K slots.

The policy is a diagonal Gaussian squashed by `tanh`:

  x ~ N(mean(s), exp(log_std(s))^2),  u = tanh(x) in (-1, 1)^D,
  a = low + (u + 1) (high - low) / 2   (the Box's units).

The prediction network returns `policy_params[B, 2D] = [mean, log_std]` of the
Gaussian over `x`. The dynamics sees the normalised action `u` (inside the
search and in the loss alike); the environment, the replay buffer and `act`
see `a` in the Box's units.

The prior over the K slots is `beta_hat / beta * pi` (Section 4 of the paper),
which is the empirical distribution `beta_hat` of the samples when `beta = pi`:
distinct continuous samples get equal prior, i.e. uniform prior logits (root
exploration noise still comes from mctx's Dirichlet or Gumbel noise).

The policy is trained towards the search's improved policy over the sampled
actions (Section 4.3): `-sum_k pi_target[k] log pi_theta(a_k | s)`, with a
small entropy bonus that keeps the Gaussian from collapsing onto its own
samples (fitting a density to K of its own samples shrinks it on average).
"""
from typing import Any, Callable, Optional, Sequence, Tuple

import gymnasium as gym
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from muax import checks
from muax import variants
from muax import nn
from muax.model import MuZero
from muax.variants.sampled import LOG_STD_MAX
from muax.variants.sampled import LOG_STD_MIN
from muax.variants.sampled import default_loss_fn
from muax.variants.sampled import from_env
from muax.variants.sampled import log_prob
from muax.variants.sampled import make_recurrent_fn
from muax.variants.sampled import make_variant
from muax.variants.sampled import plan
from muax.variants.sampled import qtransform_completed_by_parent
from muax.variants.sampled import root_fn
from muax.variants.sampled import sample_actions
from muax.variants.sampled import sampled_loss
from muax.variants.sampled import to_env

__all__ = [
    "GaussianPrediction", "SampledMuZero", "build_model", "default_loss_fn", "from_env",
    "log_prob", "make_recurrent_fn", "make_variant", "plan", "qtransform_completed_by_parent",
    "root_fn", "sample_actions", "sampled_loss", "to_env",
]

SEARCH_POLICIES = ("muzero", "gumbel")


class GaussianPrediction(hk.Module):
  """Hidden state `[B, E]` to value logits `[B, full_support_size]` and the
  Gaussian policy's `[mean, log_std]` `[B, 2 * action_dim]`.

  The output layers start at zero: value 0, mean 0 and `log_std` 0 (a unit
  Gaussian before `tanh`, spread over the whole Box). `log_std` is bounded
  smoothly to `[LOG_STD_MIN, LOG_STD_MAX]` (a scaled sigmoid), so its gradient
  never vanishes at a hard clip.
  """

  def __init__(self, action_dim: int, full_support_size: int, hidden: Sequence[int] = (64,),
               name: Optional[str] = "prediction"):
    super().__init__(name=name)
    self.action_dim = checks.positive_int("action_dim", action_dim)
    self.full_support_size = checks.positive_int("full_support_size", full_support_size)
    self.hidden = tuple(hidden)

  def __call__(self, s: jax.Array) -> Tuple[jax.Array, jax.Array]:
    v = nn.mlp(self.hidden, self.full_support_size, zero_out=True)(s)
    out = nn.mlp(self.hidden, 2 * self.action_dim, zero_out=True)(s)
    mean, raw = jnp.split(out, 2, axis=-1)
    # raw = 0 gives log_std = 0: sigmoid(b) = -LOG_STD_MIN / (MAX - MIN).
    bias = np.log(-LOG_STD_MIN / LOG_STD_MAX)
    log_std = LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN) * jax.nn.sigmoid(raw + bias)
    return v, jnp.concatenate([mean, log_std], axis=-1)


def _init_gaussian_prediction_func(prediction_module=GaussianPrediction, action_dim=None,
                                   full_support_size=None, **kwargs):
  """Returns `fn(s) -> (value_logits, policy_params[B, 2 * action_dim])`."""
  checks.positive_int("action_dim", action_dim)
  checks.positive_int("full_support_size", full_support_size)

  def prediction_func(s):
    return prediction_module(action_dim, full_support_size, **kwargs)(s)
  return prediction_func


# -- the model ----------------------------------------------------------------

class SampledMuZero(MuZero):
  """MuZero over a continuous Box action space, searching K sampled actions.

  Built by `muax.MuZero(..., policy='sampled', action_space=box)`, or
  directly. Takes `MuZero`'s arguments, with a prediction function returning
  `(value_logits[B, 2S+1], policy_params[B, 2D])` (`GaussianPrediction`) and
  a dynamics function taking normalised float actions `u[B, D]` in [-1, 1]
  (`muax.nn.Dynamic(embedding_dim, D, 2S+1)`), plus:

  Args:
    action_space: a `gymnasium.spaces.Box` of shape `(D,)` with finite bounds.
    num_samples: K, the actions sampled at every node (the search's branches;
      `pi` has K entries and `num_actions == K`).
    search_policy: 'gumbel' (`mctx.gumbel_muzero_policy`: sequential halving
      tries every sample at the root when `num_simulations >= K`, and its
      policy target weights them by their completed Q-values) or 'muzero'
      (`mctx.muzero_policy`, pUCT with the uniform prior of the paper and
      `qtransform_completed_by_parent`). On a one-step bandit over 16
      samples, gumbel finds the best sample every time from 16 simulations;
      pUCT with a uniform prior exploits the first good sample it meets
      (`tests/test_sampled.py`).
    entropy_weight: weight of the policy's entropy bonus in the default loss.

  `act` returns an action vector `[D]` (`[B, D]` for a batch) in the Box's
  units, within its bounds; `pi` is over the K sampled candidates, which the
  acting code stores as `Transition.candidates` `[K, D]` (the policy loss
  needs them).

  Raises:
    ValueError: no `action_space`, one that is not a bounded 1-D Box, a
      `num_samples` below 2, an unknown `search_policy`, a negative
      `entropy_weight`; and `MuZero`'s errors.
  """

  def __init__(self, representation_fn: Callable, prediction_fn: Callable,
               dynamic_fn: Callable, policy: str = "sampled",
               optimizer: Optional[Any] = None,
               loss_fn: Optional[Callable] = None, discount: float = 0.99,
               support_size: int = 10, *, action_space: Optional[gym.spaces.Box] = None,
               num_samples: int = 16, search_policy: str = "gumbel",
               entropy_weight: float = 1e-2, two_player: bool = False):
    if policy != "sampled":
      raise ValueError(f"SampledMuZero implements policy='sampled', got policy={policy!r}")
    self._action_space = _check_box(action_space)
    checks.positive_int("num_samples", num_samples)
    if num_samples < 2:
      raise ValueError("num_samples must be an integer >= 2 (the actions sampled at "
                       f"every node), got num_samples={num_samples!r}")
    if search_policy not in SEARCH_POLICIES:
      raise ValueError(f"search_policy must be one of {SEARCH_POLICIES}, got "
                       f"search_policy={search_policy!r}")
    checks.number("entropy_weight", entropy_weight, low=0., what="a number >= 0")
    super().__init__(representation_fn, prediction_fn, dynamic_fn, "sampled", optimizer,
                     loss_fn, discount, support_size, two_player=two_player)
    self._num_samples = int(num_samples)
    self._search_policy = search_policy
    self._entropy_weight = float(entropy_weight)
    self._low = np.asarray(self._action_space.low, np.float32)
    self._high = np.asarray(self._action_space.high, np.float32)

  @property
  def action_space(self) -> gym.spaces.Box:
    return self._action_space

  @property
  def action_dim(self) -> int:
    return int(self._action_space.shape[0])

  @property
  def action_low(self) -> np.ndarray:
    return self._low

  @property
  def action_high(self) -> np.ndarray:
    return self._high

  @property
  def num_samples(self) -> int:
    return self._num_samples

  @property
  def search_policy(self) -> str:
    return self._search_policy

  @property
  def entropy_weight(self) -> float:
    return self._entropy_weight


def build_model(action_space: gym.spaces.Box, *, embedding_dim: int = 64,
                hidden: Sequence[int] = (64,), support_size: int = 20, discount: float = 0.99,
                optimizer: Optional[Any] = None,
                num_samples: int = 16, search_policy: str = "gumbel",
                entropy_weight: float = 1e-2) -> SampledMuZero:
  """A ready Sampled MuZero of MLPs for a Box action space (not initialised).

  Representation `muax.nn.Representation`, prediction `GaussianPrediction`,
  dynamics `muax.nn.Dynamic` on the normalised action vector; `hidden` is
  each network's hidden layer widths.
  """
  box = _check_box(action_space)
  dim, size = int(box.shape[0]), 2 * checks.positive_int("support_size", support_size) + 1
  return SampledMuZero(
      nn._init_representation_func(nn.Representation, embedding_dim, hidden=hidden),
      _init_gaussian_prediction_func(GaussianPrediction, dim, size, hidden=hidden),
      nn._init_dynamic_func(nn.Dynamic, embedding_dim, dim, size, hidden=hidden),
      optimizer=optimizer, discount=discount, support_size=support_size,
      action_space=box, num_samples=num_samples, search_policy=search_policy,
      entropy_weight=entropy_weight)


def _check_box(space) -> gym.spaces.Box:
  """`space` if it is a 1-D float Box with finite bounds, else ValueError."""
  if not isinstance(space, gym.spaces.Box):
    raise ValueError("policy='sampled' needs action_space=gymnasium.spaces.Box(low, high, "
                     f"(D,)) of continuous actions, got action_space={space!r}"
                     + (" (a Discrete space: use policy='muzero' or 'gumbel')"
                        if isinstance(space, gym.spaces.Discrete) else ""))
  if len(space.shape) != 1 or space.shape[0] < 1:
    raise ValueError(f"action_space must be a Box of shape (D,), got shape {space.shape}")
  low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
  if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
    raise ValueError(f"action_space must have finite bounds with low < high, got "
                     f"low={space.low}, high={space.high}")
  return space


variants.register("sampled", make_variant, model_class=SampledMuZero, supports=("two_player",))
