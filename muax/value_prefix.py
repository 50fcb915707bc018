"""Value prefix (EfficientZero, Ye et al., 2021): predict sums of rewards.

A plain MuZero predicts each reward from one hidden state, so a reward whose
timing the model cannot pin down exactly (the "state aliasing" of
EfficientZero's paper) is spread over steps and mistaken. With a value prefix
an LSTM runs along the unroll from the root and predicts, after k+1 actions,
the sum of the rewards since the root (`r_t + ... + r_{t+k}`); the search takes
each edge's reward as the difference of two consecutive prefixes. The LSTM
starts afresh every `horizon` steps, as in the paper, so prefixes stay small.

`MuZero(..., value_prefix=True)` builds a `ValuePrefixMuZero`: the user's
three networks are kept; `dynamic_fn`'s reward logits are not used (the
prefix head replaces them), and the parameters gain `'value_prefix'`.
"""
from typing import Any, Callable, NamedTuple, Optional, Tuple

import haiku as hk
import jax
import jax.numpy as jnp
import mctx

from muax import checks
from muax import loss as loss_lib
from muax import model as model_lib
from muax import search
from muax import variants
from muax.core.variant import Variant
from muax.loss import default_loss_fn
from muax.loss import prefix_targets
from muax.support import logits_to_scalar
from muax.variants import muzero

__all__ = ["PrefixHead", "PrefixLSTM", "ValuePrefixMuZero", "make_recurrent_fn", "make_root",
           "make_variant", "prefix_targets"]


class PrefixLSTM(hk.Module):
  """`(next_s, (h, c)) -> (prefix_logits [B, 2S+1], (h, c))`."""

  def __init__(self, hidden: int, full_support_size: int, name: str = "value_prefix"):
    super().__init__(name=name)
    self.hidden = hidden
    self.full_support_size = full_support_size

  def __call__(self, s: jax.Array, state: Tuple[jax.Array, jax.Array]
               ) -> Tuple[jax.Array, Tuple[jax.Array, jax.Array]]:
    x = s.reshape((s.shape[0], -1)).astype(jnp.float32)
    out, state = hk.LSTM(self.hidden)(x, hk.LSTMState(*state))
    out = jax.nn.relu(out)
    logits = hk.Linear(self.full_support_size, w_init=hk.initializers.Constant(0.))(out)
    return logits, (state.hidden, state.cell)


class _Embedding(NamedTuple):
  """What the search carries per node: the hidden state and the prefix LSTM's."""
  s: jnp.ndarray
  h: jnp.ndarray
  c: jnp.ndarray
  prefix: jnp.ndarray  # [B] the predicted prefix of this node (0 at a reset)
  depth: jnp.ndarray   # [B] int32 steps from the root


class ValuePrefixMuZero(model_lib.MuZero):
  """MuZero whose rewards come from a value-prefix LSTM (see module doc).

  Args:
    representation_fn, prediction_fn, dynamic_fn, policy, optimizer,
      discount, support_size, two_player: as for `muax.MuZero` (policy
      'muzero' or 'gumbel').
    loss_fn: None for the default loss, which scores the reward term on the
      prefixes (`muax.loss.default_loss_fn`, or `make_loss_fn` with
      `consistency_weight`).
    value_prefix: True (this class).
    prefix_hidden: width of the LSTM.
    prefix_horizon: steps after which the LSTM starts afresh.
    consistency_weight: weight of the consistency loss in the default loss.
  """

  def __init__(self, representation_fn: Callable, prediction_fn: Callable,
               dynamic_fn: Callable, policy: str = "muzero", optimizer: Optional[Any] = None,
               loss_fn: Optional[Callable] = None, discount: float = 0.99,
               support_size: int = 10, *, two_player: bool = False, value_prefix: bool = True,
               prefix_hidden: int = 64, prefix_horizon: int = 5,
               consistency_weight: float = 0.):
    if value_prefix is not True:
      raise ValueError("ValuePrefixMuZero needs value_prefix=True")
    variants.require(policy, "value_prefix")
    self._prefix_hidden = checks.positive_int("prefix_hidden", prefix_hidden)
    self._prefix_horizon = checks.positive_int("prefix_horizon", prefix_horizon)
    # The default loss scores the reward term on the prefixes (and, with a
    # weight, adds the consistency loss); built here so a bad weight is refused now.
    self._default_loss = (loss_lib.make_loss_fn(consistency_weight=consistency_weight)
                          if loss_fn is None and consistency_weight else default_loss_fn)
    super().__init__(representation_fn, prediction_fn, dynamic_fn, policy, optimizer,
                     loss_fn, discount, support_size, two_player=two_player,
                     value_prefix=True)
    hidden, size = self._prefix_hidden, 2 * self.support_size + 1
    self.prefix_func = hk.without_apply_rng(hk.transform(
        lambda s, state: PrefixLSTM(hidden, size)(s, state)))

  @property
  def prefix_horizon(self) -> int:
    return self._prefix_horizon

  @property
  def prefix_head_hidden(self) -> int:
    """The width of the prefix LSTM."""
    return self._prefix_hidden

  @property
  def prefix_head(self) -> "PrefixHead":
    """`(apply(params, next_s, (h, c)), initial_state(B), horizon)` for the loss."""
    return PrefixHead(self.prefix_func.apply, self._initial_state, self._prefix_horizon)

  def _initial_state(self, batch: int):
    zeros = jnp.zeros((batch, self._prefix_hidden), jnp.float32)
    return zeros, zeros

  @property
  def default_loss(self) -> Callable:
    """The loss used when `loss_fn` is None."""
    return self._default_loss


def make_variant(model: ValuePrefixMuZero) -> Variant:
  """The value prefix's `Variant`: `muax.variants.muzero.make` with the prefix
  LSTM's parameters, search root and recurrent function, and a loss that
  scores the reward term on the prefixes."""
  repr_func, prefix_func = model.repr_func, model.prefix_func
  initial_state = model.prefix_head.initial_state

  def init_extra(rng_key, params, sample):
    s = repr_func.apply(params["representation"], sample)
    return dict(params, value_prefix=prefix_func.init(rng_key, s,
                                                      initial_state(sample.shape[0])))

  return muzero.make(
      model, root=make_root(model), recurrent_fn=make_recurrent_fn(model),
      init_extra=init_extra, loss=model.default_loss,
      metadata={"value_prefix": True, "prefix_hidden": model.prefix_head_hidden,
                "prefix_horizon": model.prefix_horizon})


def make_root(model: ValuePrefixMuZero) -> Callable:
  """Traced `(params, obs[B, ...]) -> mctx.RootFnOutput`: the search root, its
  embedding with a fresh prefix LSTM."""
  nets, support = model.networks, model.support_size
  initial_state = model.prefix_head.initial_state

  def root(params, obs) -> mctx.RootFnOutput:
    out = search.root_fn(nets, params, obs, support_size=support)
    batch = obs.shape[0]
    h, c = initial_state(batch)
    return out.replace(embedding=_Embedding(out.embedding, h, c, jnp.zeros((batch,)),
                                            jnp.zeros((batch,), jnp.int32)))

  return root


def make_recurrent_fn(model: ValuePrefixMuZero) -> Callable:
  """mctx's `recurrent_fn`: each edge's reward is the difference of the
  prefixes after and before it (0 before at a reset)."""
  nets, support, discount = model.networks, model.support_size, model.search_discount
  horizon, prefix_apply = model.prefix_horizon, model.prefix_func.apply

  def recurrent_fn(params, rng_key, action, node):
    del rng_key
    _, next_s = nets.dynamic(params["dynamic"], node.s, action)
    # The LSTM and the prefix start afresh every `horizon` steps.
    fresh = node.depth % horizon == 0
    h = jnp.where(fresh[:, None], 0., node.h)
    c = jnp.where(fresh[:, None], 0., node.c)
    before = jnp.where(fresh, 0., node.prefix)
    logits, (h, c) = prefix_apply(params["value_prefix"], next_s, (h, c))
    prefix = logits_to_scalar(logits, support)
    value_logits, prior_logits = nets.prediction(params["prediction"], next_s)
    out = mctx.RecurrentFnOutput(
        reward=prefix - before, discount=jnp.full_like(prefix, discount),
        prior_logits=prior_logits, value=logits_to_scalar(value_logits, support))
    return out, _Embedding(next_s, h, c, prefix, node.depth + 1)

  return recurrent_fn


class PrefixHead(NamedTuple):
  apply: Callable         # (params, next_s, (h, c)) -> (logits, (h, c))
  initial_state: Callable  # (B) -> (h, c)
  horizon: int


variants.register_option("value_prefix", make_variant, model_class=ValuePrefixMuZero)
