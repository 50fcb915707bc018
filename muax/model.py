"""`MuZero`: the stateful façade over the pure search, loss and update.

The object holds parameters and optimizer state and calls jitted pure
functions: one dispatch per `act` (root inference, search and action choice),
one per `update`. Temperature, keys, noise settings and data are traced
arguments, so changing them never recompiles.

What differs between algorithms (parameters, search, packing of a decision,
default loss, batch and checkpoint checks) is the model's `variant`, a frozen
`muax.core.variant.Variant` of pure functions built by the policy's registered
`make` (`muax.variants`); the façade only validates, holds the `TrainState`
and jits.
"""
import functools
import inspect
from typing import Any, Callable, Optional, Tuple, Union

import haiku as hk
import jax
import numpy as np
import optax

from muax import checks
from muax import checkpoint
from muax import nn
from muax import optim
from muax.loop.learning import PRIORITY
from muax.loop.learning import mean_metrics
from muax.loop.learning import metrics_dict
from muax.optim import optimizer  # noqa: F401 (muax.model.optimizer, the documented name)
from muax.core import learner
from muax.core.types import SearchBudget
from muax.core.types import SearchConfig
from muax.core.types import TrainState
from muax import reanalyze as reanalyze_lib
from muax import restore
from muax import search
from muax import updates
from muax import variants
from muax.core.variant import Variant
from muax.transition import Transition

__all__ = ["MuZero", "optimizer"]


class _InitSignature:
  """The signature of a class's `__init__` without `self` (for `inspect`)."""

  def __get__(self, obj, cls):
    sig = inspect.signature(cls.__init__)
    return sig.replace(parameters=list(sig.parameters.values())[1:])


class MuZero:
  """A MuZero agent built from three Haiku functions.

  Args:
    representation_fn: `obs[B, ...] -> s[B, ...]`.
    prediction_fn: `s -> (value_logits[B, 2S+1], policy_logits[B, A])`.
    dynamic_fn: `(s, a[B]) -> (reward_logits[B, 2S+1], next_s)`.
    policy: 'muzero' (`mctx.muzero_policy`), 'gumbel'
      (`mctx.gumbel_muzero_policy`), 'stochastic' (Stochastic MuZero,
      `muax.stochastic.StochasticMuZero`, which takes more networks) or
      'sampled' (Sampled MuZero for continuous actions,
      `muax.sampled.SampledMuZero`).
    optimizer: an optax transformation; None means `muax.model.optimizer()`.
    loss_fn: `loss_fn(model, params, batch)` returning a scalar or
      `(scalar, metrics)`; None means `muax.loss.default_loss_fn`.
    discount: the per-step discount used inside the search.
    support_size: S; value and reward are categorical over `-S..S`.
    two_player: a two-player, alternating, zero-sum game: values are from
      the view of the player to move, rewards from the view of the player who
      moved, and the search flips the sign at every step (mctx's discount
      `-discount`). Train it with a tracer built with `two_player=True`.
    value_prefix: True builds a `muax.value_prefix.ValuePrefixMuZero`
      (EfficientZero's value prefix: an LSTM predicts sums of rewards along
      the unroll; its options `prefix_hidden`, `prefix_horizon`,
      `consistency_weight` are keywords too).

  Integer (e.g. uint8) and half-precision observations reach
  `representation_fn` as float32 with the same values, inside the jitted
  functions: a replay buffer may store uint8 images, and `init` on a uint8
  sample still builds float32 weights.

  Raises:
    ValueError: an unknown `policy`, `support_size` not a positive integer,
      `discount` outside [0, 1].
    TypeError: a network function or `loss_fn` that is not callable, an
      `optimizer` that is not an optax transformation.
  """

  # `inspect.signature(MuZero)` shows `__init__`'s arguments, not `__new__`'s.
  __signature__ = _InitSignature()

  def __new__(cls, *args, **kwargs):
    # `MuZero(..., policy='stochastic')` and `policy='sampled'` build the
    # class that takes those algorithms' extra arguments (muax.stochastic,
    # muax.sampled); the registry (muax.variants) names it. Such a class only
    # adds arguments and read-only settings: what the algorithm does is its
    # `Variant`, built by the registry's `make`.
    policy = kwargs.get("policy", args[3] if len(args) > 3 else "muzero")
    if cls is MuZero and isinstance(policy, str) and policy in variants.names():
      cls = variants.get(policy).model_class or cls
    if cls is MuZero and kwargs.get("value_prefix") is True and variants.option("value_prefix"):
      cls = variants.option("value_prefix").model_class
    return super().__new__(cls)

  def __init__(self, representation_fn: Callable, prediction_fn: Callable,
               dynamic_fn: Callable, policy: str = "muzero",
               optimizer: Optional[optax.GradientTransformation] = None,
               loss_fn: Optional[Callable] = None, discount: float = 0.99,
               support_size: int = 10, *, two_player: bool = False,
               value_prefix: bool = False):
    make = variants.check_choice(self, policy, two_player=two_player, value_prefix=value_prefix)
    checks.number("discount", discount, low=0., high=1., what="a number in [0, 1]")
    checks.positive_int("support_size", support_size, echo_name=False)
    checks.network_functions(representation_fn=representation_fn,
                             prediction_fn=prediction_fn, dynamic_fn=dynamic_fn)
    checks.optimizer(optimizer)
    if loss_fn is not None and not callable(loss_fn):
      raise TypeError(f"loss_fn must be a function loss_fn(model, params, batch), got "
                      f"loss_fn={loss_fn!r}")
    # Integer (uint8 image) or half-precision observations are cast to float32
    # inside the transformed function, so Haiku never creates integer weights.
    self.repr_func = hk.without_apply_rng(hk.transform(nn.float_observations(representation_fn)))
    self.pred_func = hk.without_apply_rng(hk.transform(prediction_fn))
    self.dy_func = hk.without_apply_rng(hk.transform(dynamic_fn))
    self.networks = search.Networks(self.repr_func.apply, self.pred_func.apply, self.dy_func.apply)
    self._policy = policy
    # The algorithm's functions are built on first use, once the class's own
    # settings are in place (`variant`).
    self._make = make
    self._optimizer = optim.optimizer() if optimizer is None else optimizer
    self._loss_fn = loss_fn  # None: the variant's default loss
    self._discount = float(discount)
    self._two_player = bool(two_player)
    self._support_size = int(support_size)
    self._state: Optional[TrainState] = None  # all that learning depends on
    self._obs_shape = None
    self._num_actions = None
    self._reanalyze = None
    self._plans = {}  # SearchBudget fields -> the jitted search
    self._learners = None  # jitted (update, update_many) for the reanalysis setting
    self._apply_repr = jax.jit(self.repr_func.apply)
    self._apply_pred = jax.jit(self.pred_func.apply)
    self._apply_dyn = jax.jit(self.dy_func.apply)

  # -- set-up ---------------------------------------------------------------

  def init(self, rng_key: jax.Array, sample_input: Any) -> Any:
    """Initialises the networks and the optimizer state.

    Args:
      rng_key: a JAX PRNG key.
      sample_input: a batch of observations `[B, ...]`.

    Returns:
      params: `{'representation', 'prediction', 'dynamic'}`.

    Raises:
      TypeError: `rng_key` is not one PRNG key; `sample_input` is not numeric.
      ValueError: `sample_input` is a scalar, an empty batch or holds NaN/inf;
        the networks return shapes that do not fit `support_size`.
    """
    checks.prng_key(rng_key)
    sample = checks.sample_batch(sample_input)
    params, self._num_actions = self._init_params(rng_key, sample)
    self._state = self._fresh_state(params, self._optimizer.init(params))
    self._obs_shape = tuple(sample.shape[1:])
    return params

  def _fresh_state(self, params, opt_state) -> TrainState:
    """A `TrainState` at update 0 (the target network and the reanalysis key
    start afresh, as `set_reanalyze` sets them)."""
    seed = 0 if self._reanalyze is None else self._reanalyze.seed
    return learner.init_state(params, opt_state, key=jax.random.PRNGKey(seed),
                              with_target=self._reanalyze is not None)

  def _init_params(self, rng_key, sample):
    """Pure: initial params for `sample[B, ...]`, checked, and num_actions."""
    return self.variant.init(rng_key, sample)

  @functools.cached_property
  def variant(self) -> Variant:
    """This model's algorithm as pure functions (`muax.core.variant.Variant`),
    built once by its registered `make` (`muax.variants`)."""
    return self._make(self)

  def _plan(self, budget: tuple):
    """The variant's search for one budget (`SearchBudget`'s fields in order), jitted:
    `(params, key, obs, mask, hyper[6]) -> packed [B, P]`, arrays only (JAX's
    fastest dispatch). Compiled once per budget and input shape."""
    fn = self._plans.get(budget)
    if fn is None:
      plan, budget_ = self.variant.plan, SearchBudget(*budget)

      def packed(params, rng_key, obs, invalid_actions, hyper):
        return plan(params, rng_key, obs, invalid_actions, SearchConfig.unpack(hyper),
                    budget_)

      fn = self._plans[budget] = jax.jit(packed)
    return fn

  @property
  def compiled_searches(self) -> int:
    """Search programs compiled so far: one per search budget (simulations,
    depth, considered actions, loop, qtransform) and input shape. Keys,
    temperatures, search settings and data never add one."""
    return sum(fn._cache_size() for fn in self._plans.values())

  # -- acting ---------------------------------------------------------------

  def act(self, rng_key: jax.Array, obs: Any, with_pi: bool = False, with_value: bool = False,
          obs_from_batch: bool = False, num_simulations: int = 5, temperature: float = 1.,
          invalid_actions: Any = None, max_depth: Optional[int] = None,
          loop_fn: Callable = jax.lax.fori_loop, qtransform: Optional[Callable] = None,
          dirichlet_fraction: float = 0.25, dirichlet_alpha: float = 0.3, pb_c_init: float = 1.25,
          pb_c_base: float = 19652, max_num_considered_actions: int = 16, gumbel_scale: float = 1,
          *, params: Any = None) -> Any:
    """Plans with the learned model and chooses an action.

    Args:
      rng_key: a JAX PRNG key.
      obs: one observation, or a batch `[B, ...]` when `obs_from_batch`.
      with_pi: also return the search policy (`[A]`, or `[B, A]`).
      with_value: also return the search value (float, or `[B]`).
      obs_from_batch: `obs` is a batch.
      num_simulations: search simulations per decision.
      temperature: > 0 samples visit counts `N^(1/T)`; 0 is greedy and
        deterministic (no exploration noise).
      invalid_actions: `[B, A]` (or `[A]` for one observation), 1 = invalid.
      params: search with these parameters instead of the model's own (an
        actor's copy that lags the learner, say); same structure as `params`.
      Remaining arguments are passed to the mctx policy.

    Returns:
      `action`, `(action, value)`, `(action, pi)` or `(action, pi, value)`.

    Raises:
      RuntimeError: before `init` or `load`.
      TypeError: `rng_key` is not one PRNG key; `obs` is not numeric.
      ValueError: `obs` of the wrong shape, empty, or with NaN/inf; a count
        (`num_simulations`, `max_depth`, `max_num_considered_actions`) that is
        not a positive integer; a negative or non-finite temperature or search
        setting (`dirichlet_fraction` in [0, 1], `dirichlet_alpha` and
        `pb_c_base` > 0); `invalid_actions` of the wrong shape, with values
        other than 0/1, or masking every action of an observation.
    """
    obs = self._act_inputs(rng_key, obs, obs_from_batch, num_simulations)
    if max_depth is not None:
      checks.positive_int("max_depth", max_depth)
    checks.positive_int("max_num_considered_actions", max_num_considered_actions)
    mask = self._mask(invalid_actions, obs.shape[0])
    hyper = checks.search_settings(temperature, dirichlet_fraction, dirichlet_alpha,
                                   pb_c_init, pb_c_base, gumbel_scale)
    # One packed output: a single device-to-host copy per call.
    packed = np.asarray(self._dispatch_plan(
        params, rng_key, obs, mask, hyper,
        (int(num_simulations), None if max_depth is None else int(max_depth),
         int(max_num_considered_actions), loop_fn, qtransform)))
    action, value, pi, _ = self.unpack(packed)
    if not obs_from_batch:
      action = action[0].item() if action.ndim == 1 else action[0]
      pi, value = pi[0], float(value[0])
    if with_pi and with_value:
      return action, pi, value
    if with_pi:
      return action, pi
    if with_value:
      return action, value
    return action

  def act_async(self, rng_key: jax.Array, obs: Any, *, num_simulations: int, temperature: float,
                params: Any = None, invalid_actions: Any = None,
                obs_from_batch: bool = True) -> jax.Array:
    """Dispatches a search on `obs[B, ...]` with the default search settings.

    `invalid_actions` `[B, num_actions]` (1 = invalid) as in `act`; with
    `obs_from_batch=False`, `obs` is one observation searched as a batch of 1.

    Returns the packed `[B, 2 + A]` device array without waiting for it;
    `model.unpack(np.asarray(packed))` gives `(action, value, pi, extras)`. Used by
    collectors to overlap their bookkeeping with the next search.
    """
    obs = self._act_inputs(rng_key, obs, obs_from_batch, num_simulations)
    hyper = checks.search_settings(temperature, *_act_search_defaults())
    return self._dispatch_plan(params, rng_key, obs,
                               self._mask(invalid_actions, obs.shape[0]), hyper,
                               (int(num_simulations), None, 16, jax.lax.fori_loop, None))

  def _act_inputs(self, rng_key, obs, obs_from_batch: bool, num_simulations) -> np.ndarray:
    """`obs` as a checked batch `[B, ...]`, once the key and count are checked."""
    self._require_params("act")
    checks.prng_key(rng_key)
    obs = checks.array_of_numbers(obs, "batch of observations" if obs_from_batch else "observation")
    if not obs_from_batch:
      obs = obs[None]
    checks.observations(obs, self._obs_shape, obs_from_batch)
    checks.positive_int("num_simulations", num_simulations)
    return obs

  def _dispatch_plan(self, params, rng_key, obs, mask, hyper, budget: tuple):
    """The jitted search for `budget` (`SearchBudget`'s fields in order), with
    the model's params unless `params` is given."""
    return self._plan(budget)(self._state.params if params is None else params, rng_key,
                              obs, mask, hyper)

  def search(self, params: Any, rng_key: jax.Array, obs: jax.Array, invalid_actions: jax.Array,
             config: SearchConfig, budget: SearchBudget) -> Tuple[jax.Array, ...]:
    """Traced (call it inside `jax.jit`): one search on `obs[B, ...]` with
    `invalid_actions[B, A]` (1 = invalid); returns `(action[B], pi[B, A],
    value[B])`. Reanalysis searches through it too."""
    if self.variant.search is None:
      raise NotImplementedError(f"policy={self._policy!r} has no search of this form")
    return self.variant.search(params, rng_key, obs, invalid_actions, config, budget)

  def unpack(self, packed: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """`(action[B], value[B], pi[B, A], extras)` from `act_async`'s output on
    the host; `extras` maps optional Transition fields (e.g. `candidates`) to
    `[B, ...]` arrays the acting code stores with each step."""
    return self.variant.unpack(packed)

  def _mask(self, invalid_actions, batch):
    return self.variant.mask(invalid_actions, batch, self._num_actions)

  # -- learning -------------------------------------------------------------

  def update(self, batch: Transition, *, return_priorities: bool = False) -> Union[dict, tuple]:
    """One gradient step on a batch `[B, K, ...]`; returns float metrics.

    A step is skipped (`'skipped': 1.`, parameters and optimizer state kept)
    when its loss or gradient is not finite, when any float field of the batch
    holds NaN or inf, or when an action held in a device array lies outside
    `[0, num_actions)`. With `set_reanalyze`, the batch's targets are
    refreshed first (it needs the bootstrap fields).

    Args:
      batch: the windows, e.g. from `TrajectoryReplayBuffer.sample`.
      return_priorities: also return each window's value error `[B]` (the
        new priorities for `PrioritizedReplayBuffer.update_priorities`).

    Returns:
      metrics, or `(metrics, priorities)` with `return_priorities`.

    Raises:
      TypeError: `batch` is not a `muax.Transition`.
      ValueError: field shapes that disagree with `obs[B, K, *obs_shape]`
        (`a`, `r`, `Rn` `[B, K]`, `pi` `[B, K, num_actions]`), or (numpy
        batches) actions that are not integers in `[0, num_actions)`.
    """
    metrics = jax.device_get(self.update_async(batch))
    priorities = np.asarray(metrics.pop(PRIORITY))
    metrics = {k: float(v) for k, v in metrics.items()}
    return (metrics, priorities) if return_priorities else metrics

  def update_async(self, batch: Transition) -> dict:
    """`update` without waiting for the result: metrics stay on the device."""
    self._require_params("update")
    batch = self._check_batch(batch)
    self._state, out = self._jitted_learners()[0](self._state, batch)
    return metrics_dict(out)

  def update_many(self, batches: Transition, *,
                  return_priorities: bool = False) -> Union[dict, tuple]:
    """`U` gradient steps in one dispatch on batches `[U, B, K, ...]`.

    Equivalent to calling `update` on each `batches[u]` in turn (a
    `jax.lax.scan` inside one compiled program); returns the metrics averaged
    over the U steps, with `'skipped'` counting the skipped steps, and with
    `return_priorities` also each update's value errors `[U, B]`.
    """
    metrics = jax.device_get(self.update_many_async(batches))
    if return_priorities:
      return mean_metrics(metrics), np.asarray(metrics[PRIORITY])
    return mean_metrics(metrics)

  def update_many_async(self, batches: Transition) -> dict:
    """`update_many` without waiting: per-step metrics `[U]` (priorities
    `[U, B]`) stay on the device."""
    self._require_params("update_many")
    batches = self._check_batch(batches, stacked=True)
    self._state, out = self._jitted_learners()[1](self._state, batches)
    return metrics_dict(out)

  def update_functions(self) -> Tuple[Callable, Callable]:
    """`(update, update_many)`: this model's updates as pure functions of a
    `TrainState`, not jitted (`muax.core.learner`).

    `update(state, batch[B, K, ...])` and `update_many(state, batches[U, B,
    K, ...])` return `(state, LearnerOutput)`; they use the model's networks,
    loss, optimizer and reanalysis setting, never its parameters, so a
    `muax.loop.Learner` (or a compiled loop) can own the state.
    """
    return updates.update_functions(self, loss_fn=self._loss_fn)

  def _jitted_learners(self):
    """`update_functions()`, jitted (built once per reanalysis setting)."""
    if self._learners is None:
      self._learners = tuple(jax.jit(fn) for fn in self.update_functions())
    return self._learners

  # -- reanalyze ------------------------------------------------------------

  @property
  def reanalyze(self) -> Optional[reanalyze_lib.Reanalyze]:
    """The reanalysis settings, or None (see `set_reanalyze`)."""
    return self._reanalyze

  @property
  def target_params(self) -> Any:
    """The target network's parameters (reanalysis), or None without it."""
    return None if self._state is None else self._state.target_params

  def set_reanalyze(self, config: Union[reanalyze_lib.Reanalyze, float, None]) -> None:
    """Turns reanalysis on (`muax.Reanalyze` or a fraction) or off (None).

    Updates then refresh the targets of part of each batch (see
    `muax.reanalyze`); batches must come from `sample(...,
    bootstrap=(n, discount))`. The target network starts as a copy of the
    current parameters, the update counter at 0.

    Raises:
      ValueError: invalid settings, or a policy reanalysis does not support.
    """
    config = reanalyze_lib.as_reanalyze(config)
    if config is not None:
      variants.require(self._policy, "reanalysis")
    self._reanalyze, self._learners = config, None
    if self._state is not None:
      self._state = self._fresh_state(self._state.params, self._state.opt_state)

  @property
  def train_state(self) -> Optional[TrainState]:
    """Everything learning depends on (params, optimizer state, target network,
    update counter, key), as one pytree; None before `init` or `load`."""
    return self._state

  def restore_train_state(self, state: TrainState) -> None:
    """Continues learning from `state` (a run state's saved `train_state`).

    Raises:
      ValueError: `state` does not have this model's structure and shapes.
    """
    self._require_params("restore_train_state")
    self._state = restore.train_state(state, self._state)

  def _check_batch(self, batch, stacked=False):
    """The variant's host checks: shapes (no device sync) and numpy values."""
    self.variant.check_batch(batch, what="update_many" if stacked else "update",
                             lead=3 if stacked else 2, obs_shape=self._obs_shape,
                             num_actions=self._num_actions,
                             bootstrap=self._reanalyze is not None)
    return batch

  def check_action_space(self, space: Any, what: str = "action_space") -> None:
    """Raises ValueError unless this model can act in `space` (a Discrete space
    of `num_actions` actions once initialised; Sampled MuZero: its Box)."""
    self.variant.check_action_space(space, self._num_actions, what)

  # -- parameters -----------------------------------------------------------

  def save(self, file: Any) -> str:
    """Writes params and optimizer state to `file` (.npz added if missing)."""
    self._require_params("save")
    return str(checkpoint.save(file, self._state.params, self._state.opt_state,
                               self.checkpoint_metadata()))

  def checkpoint_metadata(self) -> dict:
    """What a checkpoint records about this model (checked by `load`)."""
    return {"obs_shape": list(self._obs_shape), "num_actions": self._num_actions,
            "support_size": self._support_size, "policy": self._policy,
            "discount": self._discount, "two_player": self._two_player,
            **self.variant.metadata}

  def load(self, file: Any) -> "MuZero":
    """Restores params and optimizer state saved by `save` (no code is run).

    Raises:
      FileNotFoundError: no checkpoint at `file` (with or without `.npz`).
      muax.checkpoint.CheckpointError: a corrupt, foreign or pickled file, or a
        checkpoint of another architecture, support size, optimizer, or (for
        an initialised model) observation shape.
    """
    params, opt_state, self._obs_shape, self._num_actions = restore.restore(
        file, init_params=self._init_params, optimizer=self._optimizer,
        support_size=self._support_size, obs_shape=self._obs_shape,
        check_checkpoint=self.variant.check_checkpoint)
    self._state = self._fresh_state(params, opt_state)
    return self

  def _require_params(self, what):
    if self._state is None:
      raise RuntimeError(f"call model.init(rng_key, sample_input) or model.load(path) "
                         f"before {what}()")

  @property
  def params(self) -> Any:
    return None if self._state is None else self._state.params

  @property
  def optimizer_state(self) -> Any:
    return None if self._state is None else self._state.opt_state

  @property
  def optimizer(self) -> optax.GradientTransformation:
    return self._optimizer

  @property
  def support_size(self) -> int:
    return self._support_size

  @property
  def discount(self) -> float:
    return self._discount

  @property
  def two_player(self) -> bool:
    return self._two_player

  @property
  def search_discount(self) -> float:
    """The discount mctx applies per step: `-discount` in two-player games."""
    return -self._discount if self._two_player else self._discount

  @property
  def policy(self) -> str:
    return self._policy

  @property
  def num_actions(self) -> Optional[int]:
    return self._num_actions

  @property
  def obs_shape(self) -> Optional[Tuple[int, ...]]:
    return self._obs_shape

  def representation(self, obs: Any) -> Any:
    """Hidden state of `obs[B, ...]` under the current parameters."""
    return self._apply_repr(self._state.params["representation"], obs)

  def prediction(self, s: Any) -> Tuple[jax.Array, jax.Array]:
    """`(value_logits, policy_logits)` of hidden state `s`."""
    return self._apply_pred(self._state.params["prediction"], s)

  def dynamic(self, s: Any, a: Any) -> Tuple[jax.Array, Any]:
    """`(reward_logits, next_s)` of hidden state `s` and actions `a[B]` (Sampled
    MuZero: `a[B, D]` in the Box's units, which the network sees normalised)."""
    return self._apply_dyn(self._state.params["dynamic"], s, self.variant.model_action(a))


_SEARCH_SETTINGS = ("dirichlet_fraction", "dirichlet_alpha", "pb_c_init", "pb_c_base",
                    "gumbel_scale")


@functools.lru_cache(maxsize=None)
def _act_search_defaults():
  """`act`'s default search settings, in the order `_plan` packs them."""
  params = inspect.signature(MuZero.act).parameters
  return tuple(float(params[name].default) for name in _SEARCH_SETTINGS)

