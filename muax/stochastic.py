"""Stochastic MuZero (Antonoglou et al., 2022): planning with chance nodes.

"Planning in stochastic environments with a learned model" splits each model
step into a decision and a chance transition:

  s_0 = repr(o_t),                         v_k, p_k = pred(s_k),
  as_k = afterstate_dyn(s_k, a_{t+k}),     Q_k, sigma_k = afterstate_pred(as_k),
  r_k, s_{k+1} = dyn(as_k, c_{t+k}),       c_{t+k} = onehot(argmax e(o_{t+k}, o_{t+k+1})).

The afterstate `as_k` is the state after the action and before the
environment's randomness; `sigma_k` is the model's distribution over `C`
discrete chance outcomes there. The encoder `e` sees the real next observation
and picks the outcome that happened: a learned codebook of `C` one-hot codes,
trained with a straight-through gradient through the dynamics. The search is
`mctx.stochastic_muzero_policy`, which alternates decision nodes (actions,
PUCT) and chance nodes (outcomes drawn in proportion to `sigma`).

`muax.MuZero(..., policy='stochastic', afterstate_dynamic_fn=...,
afterstate_prediction_fn=..., encoder_fn=...)` builds a `StochasticMuZero`;
`mlp_networks` gives ready-made MLP networks for all six functions and
`build_model` a model in one call. `GambleEnv` and `CoinBetsEnv` are small
environments with one chance event a round: the first for tests, the second
(where plain MuZero's deterministic model is misled) for the example and the
benchmark.
"""
import functools
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import haiku as hk
import jax
import jax.numpy as jnp
import mctx
import numpy as np
import optax

from muax import checks
from muax import variants
from muax.core import search as core_search
from muax.core.types import SearchBudget
from muax.core.types import SearchConfig
from muax import model as model_lib
from muax.core.variant import Variant
from muax.variants import muzero
from muax.loss import categorical_loss
from muax.loss import scale_gradient
from muax.loss import policy_target
from muax.loss import value_error
from muax.loss import weighted_mean
from muax.stochastic_envs import CoinBetsEnv
from muax.stochastic_envs import GambleEnv
from muax.stochastic_nets import AfterstateDynamic
from muax.stochastic_nets import AfterstatePrediction
from muax.stochastic_nets import Encoder
from muax.stochastic_nets import mlp_networks
from muax.support import logits_to_scalar

__all__ = [
    "AfterstateDynamic", "AfterstatePrediction", "CoinBetsEnv", "Encoder", "GambleEnv",
    "StochasticMuZero", "StochasticNetworks", "build_model", "init_params", "make_variant",
    "mlp_networks", "plan", "stochastic_muzero_loss",
]


class StochasticNetworks(NamedTuple):
  """Haiku `apply` functions of the six Stochastic MuZero networks."""
  representation: Callable         # (params, obs[B, ...]) -> s[B, ...]
  prediction: Callable             # (params, s) -> (value_logits[B, V], policy_logits[B, A])
  afterstate_dynamic: Callable     # (params, s, a[B]) -> as[B, ...]
  afterstate_prediction: Callable  # (params, as) -> (q_logits[B, V], chance_logits[B, C])
  dynamic: Callable                # (params, as, code[B, C]) -> (reward_logits[B, V], next_s)
  encoder: Callable                # (params, obs, next_obs) -> code_logits[B, C]


class StochasticMuZero(model_lib.MuZero):
  """A Stochastic MuZero agent: `muax.MuZero` with afterstates and chance codes.

  Built by `muax.MuZero(..., policy='stochastic', ...)` (or directly). Acting,
  `fit`, `save`/`load` and `update` work as for `MuZero`; the search is
  `mctx.stochastic_muzero_policy` and the default loss
  `stochastic_muzero_loss`.

  Args:
    representation_fn: `obs[B, ...] -> s[B, ...]`.
    prediction_fn: `s -> (value_logits[B, 2S+1], policy_logits[B, A])`.
    dynamic_fn: the chance dynamics, `(as, code[B, C]) -> (reward_logits[B,
      2S+1], next_s)`; `code` is a float one-hot (straight-through while
      learning) vector, as `nn.Dynamic(embedding_dim, num_chance_outcomes,
      2S+1)` accepts. `next_s` must have the shape of `s`.
    policy: 'stochastic'.
    optimizer, loss_fn, discount, support_size: as for `muax.MuZero`; the
      default loss is `stochastic_muzero_loss`.
    afterstate_dynamic_fn: `(s, a[B]) -> as[B, ...]`.
    afterstate_prediction_fn: `as -> (q_logits[B, 2S+1], chance_logits[B, C])`.
    encoder_fn: `(obs[B, ...], next_obs[B, ...]) -> code_logits[B, C]`: which
      chance outcome led from `obs` to `next_obs`.
    num_chance_outcomes: C, the size of the codebook.
    two_player: must be False (not supported).

  `num_simulations` counts decision and chance expansions alike, and
  `max_depth` counts both kinds of node (mctx's convention): one environment
  step is two levels of the tree. `gumbel_scale` and
  `max_num_considered_actions` are ignored.

  Raises:
    ValueError: a missing extra network, `num_chance_outcomes` not a positive
      integer, `two_player=True`, or any error of `muax.MuZero`.
    TypeError: an extra network that is not callable.
  """

  def __init__(self, representation_fn: Callable, prediction_fn: Callable,
               dynamic_fn: Callable, policy: str = "stochastic",
               optimizer: Optional[optax.GradientTransformation] = None,
               loss_fn: Optional[Callable] = None, discount: float = 0.99,
               support_size: int = 10, *, afterstate_dynamic_fn: Optional[Callable] = None,
               afterstate_prediction_fn: Optional[Callable] = None,
               encoder_fn: Optional[Callable] = None, num_chance_outcomes: int = 32,
               two_player: bool = False):
    if policy != "stochastic":
      raise ValueError(f"StochasticMuZero needs policy='stochastic', got policy={policy!r}")
    extras = (("afterstate_dynamic_fn", afterstate_dynamic_fn),
              ("afterstate_prediction_fn", afterstate_prediction_fn),
              ("encoder_fn", encoder_fn))
    for name, fn in extras:
      if fn is None:
        raise ValueError(f"policy='stochastic' needs {name} (see "
                         "muax.stochastic.mlp_networks for ready-made networks)")
      if not callable(fn):
        raise TypeError(f"{name} must be a function building Haiku modules, got {fn!r}")
    self._num_chance_outcomes = checks.positive_int("num_chance_outcomes",
                                                    num_chance_outcomes)
    super().__init__(representation_fn, prediction_fn, dynamic_fn, policy, optimizer,
                     loss_fn, discount, support_size, two_player=two_player)
    transform = lambda fn: hk.without_apply_rng(hk.transform(fn))  # noqa: E731
    self.afterstate_dy_func = transform(afterstate_dynamic_fn)
    self.afterstate_pred_func = transform(afterstate_prediction_fn)
    self.encoder_func = transform(_float_observation_pair(encoder_fn))
    self.stochastic_networks = StochasticNetworks(
        self.repr_func.apply, self.pred_func.apply, self.afterstate_dy_func.apply,
        self.afterstate_pred_func.apply, self.dy_func.apply, self.encoder_func.apply)

  @property
  def num_chance_outcomes(self) -> int:
    return self._num_chance_outcomes

  def afterstate(self, s: jax.Array, a: jax.Array) -> jax.Array:
    """Afterstate of hidden state `s` and actions `a[B]`."""
    return self.afterstate_dy_func.apply(self.params["afterstate_dynamic"], s, a)

  def afterstate_prediction(self, afterstate: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """`(q_logits[B, 2S+1], chance_logits[B, C])` of an afterstate."""
    return self.afterstate_pred_func.apply(self.params["afterstate_prediction"], afterstate)

  def encode(self, obs: jax.Array, next_obs: jax.Array) -> jax.Array:
    """Chance code logits `[B, C]` of the transitions `obs -> next_obs`."""
    return self.encoder_func.apply(self.params["encoder"], obs, next_obs)


# -- the variant --------------------------------------------------------------


def make_variant(model: StochasticMuZero) -> Variant:
  """Stochastic MuZero's `Variant`: six networks, `stochastic_muzero_policy`,
  `stochastic_muzero_loss`, and windows of at least two steps."""
  nets, support = model.stochastic_networks, model.support_size
  num_c, discount = model.num_chance_outcomes, model.search_discount
  transforms = (model.repr_func, model.pred_func, model.afterstate_dy_func,
                model.afterstate_pred_func, model.dy_func, model.encoder_func)

  def search(params, rng_key, obs, invalid_actions, config, budget):
    return plan(nets, params, rng_key, obs, invalid_actions, config.temperature,
                config.dirichlet_fraction, config.dirichlet_alpha, config.pb_c_init,
                config.pb_c_base, support_size=support, discount=discount,
                num_chance_outcomes=num_c, num_simulations=budget.num_simulations,
                max_depth=budget.max_depth, loop_fn=budget.loop_fn,
                qtransform=budget.qtransform)

  def plan_packed(params, rng_key, obs, invalid_actions, config, budget):
    return muzero.pack_plan(*search(params, rng_key, obs, invalid_actions, config, budget))

  def check_batch(batch, *, what, lead, **shapes):
    muzero.check_batch(batch, what=what, lead=lead, **shapes)
    k_steps = np.shape(batch.obs)[lead - 1]
    if k_steps < 2:
      raise ValueError(f"policy='stochastic' learns a chance code from each window's next "
                       f"observation: use k_steps >= 2, got windows of {k_steps} step(s)")

  return Variant(init=functools.partial(init_params, transforms, support_size=support,
                                        num_chance_outcomes=num_c),
                 plan=plan_packed, unpack=muzero.unpack, loss=default_loss_fn,
                 check_batch=check_batch, batch_is_sane=muzero.batch_is_sane,
                 mask=muzero.make_mask(), check_action_space=muzero.check_discrete_space,
                 search=search, metadata={"num_chance_outcomes": num_c})


def init_params(transforms: Sequence[hk.Transformed], rng_key: jax.Array, sample: jax.Array, *,
                support_size: int, num_chance_outcomes: int) -> Tuple[hk.Params, int]:
  """Pure: the six networks' params for `sample[B, ...]`, checked, and A.

  `transforms`: the Haiku transforms of representation, prediction,
  afterstate dynamics, afterstate prediction, dynamics and encoder.
  """
  repr_func, pred_func, after_dy_func, after_pred_func, dy_func, encoder_func = transforms
  keys = jax.random.split(rng_key, 6)
  batch, size, num_c = sample.shape[0], 2 * support_size + 1, num_chance_outcomes
  params = {"representation": repr_func.init(keys[0], sample)}
  s = repr_func.apply(params["representation"], sample)
  params["prediction"] = pred_func.init(keys[1], s)
  value_logits, policy_logits = pred_func.apply(params["prediction"], s)
  _check_shape("prediction_fn", "value logits", value_logits, (batch, size))
  if policy_logits.ndim != 2 or policy_logits.shape[0] != batch:
    raise ValueError(f"prediction_fn returned policy logits of shape "
                     f"{policy_logits.shape}; expected [B, num_actions] with B={batch}")
  a = jnp.zeros((batch,), jnp.int32)
  params["afterstate_dynamic"] = after_dy_func.init(keys[2], s, a)
  afterstate = after_dy_func.apply(params["afterstate_dynamic"], s, a)
  params["afterstate_prediction"] = after_pred_func.init(keys[3], afterstate)
  q_logits, chance_logits = after_pred_func.apply(params["afterstate_prediction"], afterstate)
  _check_shape("afterstate_prediction_fn", "Q value logits", q_logits, (batch, size))
  _check_shape("afterstate_prediction_fn", "chance logits", chance_logits, (batch, num_c))
  code = jnp.zeros((batch, num_c), jnp.float32)
  params["dynamic"] = dy_func.init(keys[4], afterstate, code)
  reward_logits, next_s = dy_func.apply(params["dynamic"], afterstate, code)
  _check_shape("dynamic_fn", "reward logits", reward_logits, (batch, size))
  _check_shape("dynamic_fn", "next state", next_s, s.shape)
  params["encoder"] = encoder_func.init(keys[5], sample, sample)
  _check_shape("encoder_fn", "code logits",
               encoder_func.apply(params["encoder"], sample, sample), (batch, num_c))
  return params, int(policy_logits.shape[1])


# -- search ------------------------------------------------------------------


def make_recurrent_fns(nets: StochasticNetworks, *, support_size: int, discount: float,
                       num_chance_outcomes: int) -> Tuple[Callable, Callable]:
  """mctx's `(decision_recurrent_fn, chance_recurrent_fn)` over the networks.

  A decision node expands an action into an afterstate (no reward, no
  discount): its value is the afterstate Q, its children's prior `sigma`. A
  chance node expands an outcome into a state with the reward and discount of
  the environment step, and that state's value and policy prior.
  """

  def decision_recurrent_fn(params, rng_key, action, state):
    del rng_key
    afterstate = nets.afterstate_dynamic(params["afterstate_dynamic"], state, action)
    q_logits, chance_logits = nets.afterstate_prediction(
        params["afterstate_prediction"], afterstate)
    output = mctx.DecisionRecurrentFnOutput(
        chance_logits=chance_logits, afterstate_value=logits_to_scalar(q_logits, support_size))
    return output, afterstate

  def chance_recurrent_fn(params, rng_key, outcome, afterstate):
    del rng_key
    # mctx also calls this at decision nodes (outcome < 0) and discards the
    # result; one_hot gives a zero code there.
    code = jax.nn.one_hot(outcome, num_chance_outcomes)
    reward_logits, s = nets.dynamic(params["dynamic"], afterstate, code)
    value_logits, prior_logits = nets.prediction(params["prediction"], s)
    reward = logits_to_scalar(reward_logits, support_size)
    output = mctx.ChanceRecurrentFnOutput(
        action_logits=prior_logits, value=logits_to_scalar(value_logits, support_size),
        reward=reward, discount=jnp.full_like(reward, discount))
    return output, s

  return decision_recurrent_fn, chance_recurrent_fn


def plan(nets: StochasticNetworks, params: hk.Params, rng_key: jax.Array, obs: jax.Array,
         invalid_actions: Optional[jax.Array], temperature: jax.typing.ArrayLike,
         dirichlet_fraction: jax.typing.ArrayLike, dirichlet_alpha: jax.typing.ArrayLike,
         pb_c_init: jax.typing.ArrayLike, pb_c_base: jax.typing.ArrayLike, *,
         support_size: int, discount: float, num_chance_outcomes: int, num_simulations: int,
         max_depth: Optional[int] = None, loop_fn: Callable = jax.lax.fori_loop,
         qtransform: Optional[Callable] = None) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """Stochastic MuZero search from a batch of observations; chooses actions.

  `temperature == 0` is greedy and deterministic: no Dirichlet noise, a fixed
  key for mctx's tie-breaking, and the most visited action.

  Args:
    obs: `[B, ...]` observations.
    invalid_actions: `[B, A]`, 1 = invalid.
    temperature: scalar; visit counts are sampled as `N^(1/temperature)`.

  Returns:
    `(action[B], pi[B, A], value[B])`: pi is the visit distribution over the
    root's actions, value the search value of the root.
  """
  s = nets.representation(params["representation"], obs)
  value_logits, prior_logits = nets.prediction(params["prediction"], s)
  root = mctx.RootFnOutput(prior_logits=prior_logits,
                           value=logits_to_scalar(value_logits, support_size), embedding=s)
  decision_fn, chance_fn = make_recurrent_fns(
      nets, support_size=support_size, discount=discount,
      num_chance_outcomes=num_chance_outcomes)
  config = SearchConfig(temperature=temperature, dirichlet_fraction=dirichlet_fraction,
                        dirichlet_alpha=dirichlet_alpha, pb_c_init=pb_c_init,
                        pb_c_base=pb_c_base, gumbel_scale=jnp.float32(0.))
  budget = SearchBudget(num_simulations=num_simulations, max_depth=max_depth,
                        loop_fn=loop_fn, qtransform=qtransform)
  out = core_search.run("stochastic", params, rng_key, lambda _: root, decision_fn,
                        invalid_actions, config, budget, chance_recurrent_fn=chance_fn)
  return out.action, out.pi, out.value

# -- loss --------------------------------------------------------------------


def stochastic_muzero_loss(nets: StochasticNetworks, params: hk.Params, batch: Any, *,
                           support_size: int,
                           value_weight: float = 1., reward_weight: float = 1.,
                           policy_weight: float = 1., afterstate_value_weight: float = 1.,
                           chance_weight: float = 1., commitment_weight: float = 0.1
                           ) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Mean Stochastic MuZero loss over a batch of windows (paper, Section 4).

  Unrolls the model along the taken actions `a_{t+k}` and the encoder's
  codes `c_{t+k} = onehot(argmax e(o_{t+k}, o_{t+k+1}))`, which enter the
  dynamics straight-through (`onehot + e - stop_gradient(e)`, the identity on
  the encoder's logits `e`), so the reward and later predictions train the
  encoder. Per step `k`:

    value and afterstate Q against the two-hot n-step return `Rn_{t+k}`,
    policy against the search policy `pi_{t+k}`,
    reward against the two-hot `r_{t+k}`,
    chance: cross-entropy of `sigma_k` against the code (no gradient into
      the encoder), plus `commitment_weight * ||softmax(e) - code||^2`.

  The last step of a window has no next observation: its reward, chance and
  commitment terms are masked (so windows need K >= 2). The gradient entering
  each next state is halved, as in `muax.loss`, and the terms are averaged
  over the `B * K` steps.

  Args:
    nets: the Haiku apply functions.
    params: the six networks' parameters.
    batch: a Transition with fields `[B, K, ...]`, K >= 2.
    support_size: S of the categorical support.

  Returns:
    `(loss, metrics)`: a scalar and a dict of scalar diagnostics.
  """
  obs = jnp.asarray(batch.obs)
  k_steps = obs.shape[1]
  code_logits = _encode_window(nets.encoder, params["encoder"], obs)  # [B, K-1, C]
  soft = jax.nn.softmax(code_logits)
  hard = jax.nn.one_hot(jnp.argmax(code_logits, -1), code_logits.shape[-1])
  # Straight-through on the logits, not the softmax: the softmax Jacobian
  # scales the gradient of an unused code by its probability (about 1/C), and
  # outcomes that start on one code then take far longer to split.
  code = hard + code_logits - jax.lax.stop_gradient(code_logits)
  code = jnp.pad(code, ((0, 0), (0, 1), (0, 0)))
  has_next = (jnp.arange(k_steps) < k_steps - 1).astype(jnp.float32)  # [K]

  def unroll(s, x):
    a, c = x
    value_logits, policy_logits = nets.prediction(params["prediction"], s)
    afterstate = nets.afterstate_dynamic(params["afterstate_dynamic"], s, a)
    q_logits, chance_logits = nets.afterstate_prediction(params["afterstate_prediction"],
                                                         afterstate)
    reward_logits, next_s = nets.dynamic(params["dynamic"], afterstate, c)
    return scale_gradient(next_s, 0.5), (value_logits, policy_logits, q_logits,
                                          chance_logits, reward_logits)

  s = nets.representation(params["representation"], obs[:, 0])
  actions = jnp.swapaxes(jnp.asarray(batch.a), 0, 1).astype(jnp.int32)  # [K, B]
  _, outputs = jax.lax.scan(unroll, s, (actions, jnp.swapaxes(code, 0, 1)))
  value_logits, policy_logits, q_logits, chance_logits, reward_logits = (
      jnp.swapaxes(x, 0, 1) for x in outputs)  # back to [B, K, ...]

  value_loss = categorical_loss(value_logits, batch.Rn, support_size)
  q_loss = categorical_loss(q_logits, batch.Rn, support_size)
  reward_loss = categorical_loss(reward_logits, batch.r, support_size) * has_next
  policy_loss = optax.softmax_cross_entropy(policy_logits, policy_target(batch))
  chance_loss = optax.softmax_cross_entropy(chance_logits[:, :-1],
                                            jax.lax.stop_gradient(hard))  # [B, K-1]
  commitment_loss = jnp.sum(jnp.square(soft - hard), -1)  # [B, K-1]
  chance_terms = jnp.pad(chance_weight * chance_loss + commitment_weight * commitment_loss,
                         ((0, 0), (0, 1)))
  loss = weighted_mean(value_weight * value_loss + reward_weight * reward_loss
                       + policy_weight * policy_loss + afterstate_value_weight * q_loss
                       + chance_terms, batch)
  masked_mean = lambda x: jnp.sum(x) / (x.shape[0] * (k_steps - 1))  # noqa: E731
  metrics = {
      "value_loss": jnp.mean(value_loss),
      "reward_loss": masked_mean(reward_loss),
      "policy_loss": jnp.mean(policy_loss),
      "afterstate_value_loss": jnp.mean(q_loss),
      "chance_loss": jnp.mean(chance_loss),
      "commitment_loss": jnp.mean(commitment_loss),
      "codes_used": jnp.sum(jnp.max(hard, axis=(0, 1))),
      "value": jnp.mean(logits_to_scalar(value_logits[:, 0], support_size)),
      "n_step_return": jnp.mean(jnp.asarray(batch.Rn, jnp.float32)[:, 0]),
      "priority": value_error(logits_to_scalar(value_logits[:, 0], support_size), batch),
  }
  return loss, metrics


def default_loss_fn(model: StochasticMuZero, params: hk.Params,
                    batch: Any) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """`stochastic_muzero_loss` with default weights, as `loss_fn(model, params, batch)`."""
  return stochastic_muzero_loss(model.stochastic_networks, params, batch,
                                support_size=model.support_size)


def build_model(num_actions: int, *, embedding_dim: int = 16,
                hidden: Union[int, Sequence[int]] = 64,
                support_size: int = 10, discount: float = 0.99,
                optimizer: Optional[optax.GradientTransformation] = None,
                num_chance_outcomes: int = 32) -> StochasticMuZero:
  """A Stochastic MuZero with the MLP networks of `mlp_networks`, not initialised."""
  return StochasticMuZero(**mlp_networks(num_actions, num_chance_outcomes,
                                         embedding_dim=embedding_dim, hidden=hidden,
                                         support_size=support_size),
                          policy="stochastic", optimizer=optimizer, discount=discount)


# -- helpers -----------------------------------------------------------------


def _encode_window(encoder, encoder_params, obs):
  """Code logits `[B, K-1, C]` of the transitions `obs[:, k] -> obs[:, k+1]`."""
  batch, k_steps = obs.shape[:2]
  flat = lambda x: jnp.reshape(x, (batch * (k_steps - 1),) + obs.shape[2:])  # noqa: E731
  logits = encoder(encoder_params, flat(obs[:, :-1]), flat(obs[:, 1:]))
  return jnp.reshape(logits, (batch, k_steps - 1, -1))


def _float_observation_pair(encoder_fn):
  """Wraps `encoder_fn` to see integer or half-precision observations as float32."""

  @functools.wraps(encoder_fn)
  def fn(obs, next_obs):
    cast = lambda x: jnp.asarray(x).astype(jnp.float32)  # noqa: E731
    return encoder_fn(cast(obs), cast(next_obs))

  return fn


def _check_shape(fn_name, what, x, expected):
  if tuple(x.shape) != tuple(expected):
    raise ValueError(f"{fn_name} returned {what} of shape {tuple(x.shape)}; expected "
                     f"{tuple(expected)}")


variants.register("stochastic", make_variant, model_class=StochasticMuZero)
