"""Stochastic MuZero's networks: afterstate dynamics and prediction, the chance
encoder, and `mlp_networks`, all six MLPs as `muax.MuZero` arguments
(re-exported by `muax.stochastic`)."""
from typing import Optional, Sequence, Tuple, Union

import haiku as hk
import jax.numpy as jnp
import numpy as np

from muax import checks
from muax import nn

__all__ = ["AfterstateDynamic", "AfterstatePrediction", "Encoder", "mlp_networks"]


class AfterstateDynamic(hk.Module):
  """Hidden state `[B, D]` and action `[B]` to afterstate `[B, embedding_dim]`."""

  def __init__(self, embedding_dim: int, num_actions: int, hidden: Sequence[int] = (64,),
               name: Optional[str] = "afterstate_dynamic"):
    super().__init__(name=name)
    self.embedding_dim = checks.positive_int("embedding_dim", embedding_dim)
    self.num_actions = checks.positive_int("num_actions", num_actions)
    self.hidden = tuple(hidden)

  def __call__(self, s: jnp.ndarray, a: jnp.ndarray) -> jnp.ndarray:
    sa = jnp.concatenate([s, nn.encode_action(a, self.num_actions, s.dtype)], axis=-1)
    return nn.min_max_normalize(nn.mlp(self.hidden, self.embedding_dim)(sa))


class AfterstatePrediction(hk.Module):
  """Afterstate `[B, D]` to Q value logits `[B, full_support_size]` and chance
  logits `[B, num_chance_outcomes]`; both start at zero (Q 0, uniform sigma)."""

  def __init__(self, num_chance_outcomes: int, full_support_size: int,
               hidden: Sequence[int] = (64,), name: Optional[str] = "afterstate_prediction"):
    super().__init__(name=name)
    self.num_chance_outcomes = checks.positive_int("num_chance_outcomes", num_chance_outcomes)
    self.full_support_size = checks.positive_int("full_support_size", full_support_size)
    self.hidden = tuple(hidden)

  def __call__(self, afterstate: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
    q = nn.mlp(self.hidden, self.full_support_size, zero_out=True)(afterstate)
    sigma = nn.mlp(self.hidden, self.num_chance_outcomes, zero_out=True)(afterstate)
    return q, sigma


class Encoder(hk.Module):
  """Observations `obs`, `next_obs` `[B, ...]` to chance code logits `[B, C]`.

  The output layer starts small (weights scaled by `init_scale`): the codes
  are `argmax` of the logits, and large random initial logits put outcomes
  that differ in a single input (two sides of a coin) on one code about a
  quarter of the time, to be pulled apart slowly by the straight-through
  gradient. Small ones let the first updates pick the codes.
  """

  def __init__(self, num_chance_outcomes: int, hidden: Sequence[int] = (64,),
               init_scale: float = 0.01, name: Optional[str] = "encoder"):
    super().__init__(name=name)
    self.num_chance_outcomes = checks.positive_int("num_chance_outcomes", num_chance_outcomes)
    self.hidden = tuple(hidden)
    self.init_scale = float(init_scale)

  def __call__(self, obs: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
    flat = lambda x: jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32)  # noqa: E731
    x = jnp.concatenate([flat(obs), flat(next_obs)], axis=-1)
    for width in self.hidden:
      x = nn.elu(hk.Linear(width)(x))
    w_init = hk.initializers.VarianceScaling(self.init_scale ** 2)
    return hk.Linear(self.num_chance_outcomes, w_init=w_init)(x)


def _init_afterstate_dynamic_func(afterstate_dynamic_module, embedding_dim, num_actions,
                                  **kwargs):
  """Returns `fn(s, a) -> afterstate`."""
  checks.positive_int("embedding_dim", embedding_dim)
  checks.positive_int("num_actions", num_actions)

  def afterstate_dynamic_func(s, a):
    return afterstate_dynamic_module(embedding_dim, num_actions, **kwargs)(s, a)
  return afterstate_dynamic_func


def _init_afterstate_prediction_func(afterstate_prediction_module, num_chance_outcomes,
                                     full_support_size, **kwargs):
  """Returns `fn(afterstate) -> (q_logits, chance_logits)`."""
  checks.positive_int("num_chance_outcomes", num_chance_outcomes)
  checks.positive_int("full_support_size", full_support_size)

  def afterstate_prediction_func(afterstate):
    return afterstate_prediction_module(num_chance_outcomes, full_support_size,
                                        **kwargs)(afterstate)
  return afterstate_prediction_func


def _init_encoder_func(encoder_module, num_chance_outcomes, **kwargs):
  """Returns `fn(obs, next_obs) -> code_logits`."""
  checks.positive_int("num_chance_outcomes", num_chance_outcomes)

  def encoder_func(obs, next_obs):
    return encoder_module(num_chance_outcomes, **kwargs)(obs, next_obs)
  return encoder_func


def mlp_networks(num_actions: int, num_chance_outcomes: int = 32, *,
                 embedding_dim: int = 16, hidden: Union[int, Sequence[int]] = (64,),
                 support_size: int = 10) -> dict:
  """The six MLP networks of a Stochastic MuZero, as constructor arguments.

  `muax.MuZero(**mlp_networks(2), policy='stochastic')` builds a model.

  Args:
    num_actions: A.
    num_chance_outcomes: C, the codebook size.
    embedding_dim: size of states and afterstates.
    hidden: widths of the hidden layers (an int for one layer).
    support_size: S of the value and reward support.

  Returns:
    a dict with `representation_fn`, `prediction_fn`, `dynamic_fn`,
    `afterstate_dynamic_fn`, `afterstate_prediction_fn`, `encoder_fn`,
    `num_chance_outcomes` and `support_size`.
  """
  hidden = (hidden,) if isinstance(hidden, (int, np.integer)) else tuple(hidden)
  size = 2 * checks.positive_int("support_size", support_size) + 1
  return dict(
      representation_fn=nn._init_representation_func(nn.Representation, embedding_dim,
                                                     hidden=hidden),
      prediction_fn=nn._init_prediction_func(nn.Prediction, num_actions, size, hidden=hidden),
      dynamic_fn=nn._init_dynamic_func(nn.Dynamic, embedding_dim, num_chance_outcomes,
                                       size, hidden=hidden),
      afterstate_dynamic_fn=_init_afterstate_dynamic_func(
          AfterstateDynamic, embedding_dim, num_actions, hidden=hidden),
      afterstate_prediction_fn=_init_afterstate_prediction_func(
          AfterstatePrediction, num_chance_outcomes, size, hidden=hidden),
      encoder_fn=_init_encoder_func(Encoder, num_chance_outcomes, hidden=hidden),
      num_chance_outcomes=num_chance_outcomes, support_size=support_size)
