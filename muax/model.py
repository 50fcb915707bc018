"""`MuZero`: the stateful façade over the pure search, loss and update.

It validates, holds one `TrainState` and jits: one dispatch per `act` (root
inference, search and action choice), one per `update`; keys, temperatures,
search settings and data are traced, so changing them never recompiles. What
differs between algorithms is the model's `variant`, a frozen
`muax.core.variant.Variant` of pure functions built by the policy's registered
`make` (`muax.variants`).
"""
import functools
import inspect
from operator import attrgetter
from typing import Any, Callable, Optional, Tuple, Union

import haiku as hk
import jax
import numpy as np
import optax

from muax import checks
from muax import checkpoint
from muax import nn
from muax import optim
from muax.loop import learning
from muax.optim import optimizer  # noqa: F401 (muax.model.optimizer, the documented name)
from muax.core.types import SearchBudget
from muax.core.types import SEARCH_FIELDS
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


def _state_field(name: str, doc: str) -> property:
  """A read-only property: the `TrainState` field `name`, or None before `init`."""
  return property(lambda self: None if self._state is None else getattr(self._state, name),
                  doc=doc)


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
    policy: 'muzero' (`mctx.muzero_policy`), 'gumbel' (`mctx.gumbel_muzero_policy`),
      'stochastic' (`muax.stochastic.StochasticMuZero`, more networks) or 'sampled'
      (continuous actions, `muax.sampled.SampledMuZero`); `muax.variants` lists them.
    optimizer: an optax transformation; None means `muax.model.optimizer()`.
    loss_fn: `loss_fn(model, params, batch)` returning a scalar or
      `(scalar, metrics)`; None means `muax.loss.default_loss_fn`.
    discount: the per-step discount used inside the search.
    support_size: S; value and reward are categorical over `-S..S`.
    two_player: an alternating zero-sum game: values from the view of the player
      to move, rewards from the player who moved; the search flips the sign at
      every step. Train it with a tracer built with `two_player=True`.
    value_prefix: True builds a `muax.value_prefix.ValuePrefixMuZero` (an LSTM
      predicts sums of rewards; keywords `prefix_hidden`, `prefix_horizon`,
      `consistency_weight`).

  Integer (uint8) and half-precision observations reach `representation_fn` as
  float32 with the same values, inside the jitted functions.

  Raises:
    ValueError: an unknown `policy`, `support_size` not a positive integer,
      `discount` outside [0, 1].
    TypeError: a network function or `loss_fn` that is not callable, an
      `optimizer` that is not an optax transformation.
  """

  # `inspect.signature(MuZero)` shows `__init__`'s arguments, not `__new__`'s.
  __signature__ = _InitSignature()

  def __new__(cls, *args, **kwargs):
    # `MuZero(..., policy='stochastic')` builds the registry's class for it.
    return super().__new__(variants.model_class(cls, MuZero, args, kwargs))

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
    checks.loss_fn(loss_fn)
    # Integer (uint8 image) or half-precision observations are cast to float32
    # inside the transformed function, so Haiku never creates integer weights.
    self.repr_func = hk.without_apply_rng(hk.transform(nn.float_observations(representation_fn)))
    self.pred_func = hk.without_apply_rng(hk.transform(prediction_fn))
    self.dy_func = hk.without_apply_rng(hk.transform(dynamic_fn))
    self.networks = search.Networks(self.repr_func.apply, self.pred_func.apply, self.dy_func.apply)
    self._jitted_networks = search.Networks(*map(jax.jit, self.networks))
    # `make` builds the algorithm's functions on first use (`variant`), once a
    # subclass's own settings are in place; loss_fn None is the variant's loss.
    self._policy, self._make, self._loss_fn = policy, make, loss_fn
    self._optimizer = optim.optimizer() if optimizer is None else optimizer
    self._discount, self._two_player = float(discount), bool(two_player)
    self._support_size = int(support_size)
    self._state: Optional[TrainState] = None  # all that learning depends on
    self._obs_shape = self._num_actions = self._reanalyze = None
    self._learners = None  # jitted (update, update_many) for the reanalysis setting

  # -- set-up ---------------------------------------------------------------

  def init(self, rng_key: jax.Array, sample_input: Any) -> Any:
    """Initialises the networks and the optimizer state from a PRNG key and a
    batch of observations `[B, ...]`; returns the params `{'representation',
    'prediction', 'dynamic'}`.

    Raises:
      TypeError: `rng_key` is not one PRNG key; `sample_input` is not numeric.
      ValueError: `sample_input` is a scalar, an empty batch or holds NaN/inf;
        the networks return shapes that do not fit `support_size`.
    """
    checks.prng_key(rng_key)
    sample = checks.sample_batch(sample_input)
    params, self._num_actions = self.variant.init(rng_key, sample)
    self._state = reanalyze_lib.fresh_state(params, self._optimizer.init(params),
                                            self._reanalyze)
    self._obs_shape = tuple(sample.shape[1:])
    return params

  @functools.cached_property
  def variant(self) -> Variant:
    """This model's algorithm as pure functions (`muax.core.variant.Variant`),
    built once by its registered `make` (`muax.variants`)."""
    return self._make(self)

  @functools.cached_property
  def _plans(self) -> search.Plans:
    """The variant's search, jitted once per budget (`muax.search.Plans`)."""
    return search.Plans(self.variant.plan)

  @property
  def compiled_searches(self) -> int:
    """Search programs compiled so far: one per search budget (simulations,
    depth, considered actions, loop, qtransform) and input shape. Keys,
    temperatures, search settings and data never add one."""
    return self._plans.compiled

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
      ValueError: `obs` of the wrong shape, empty, or with NaN/inf; a count that
        is not a positive integer; a search setting out of range (temperature
        >= 0, `dirichlet_fraction` in [0, 1], `dirichlet_alpha` and `pb_c_base`
        > 0); `invalid_actions` of the wrong shape, not 0/1, or masking all.
    """
    obs, mask = self._act_inputs(rng_key, obs, obs_from_batch, num_simulations, invalid_actions)
    if max_depth is not None:
      checks.positive_int("max_depth", max_depth)
    checks.positive_int("max_num_considered_actions", max_num_considered_actions)
    hyper = checks.search_settings(temperature, dirichlet_fraction, dirichlet_alpha,
                                   pb_c_init, pb_c_base, gumbel_scale)
    budget = (int(num_simulations), None if max_depth is None else int(max_depth),
              int(max_num_considered_actions), loop_fn, qtransform)
    # One packed output: a single device-to-host copy per call.
    packed = np.asarray(self._plans(budget)(
        self._state.params if params is None else params, rng_key, obs, mask, hyper))
    action, value, pi, _ = self.unpack(packed)
    if not obs_from_batch:
      action = action[0].item() if action.ndim == 1 else action[0]
      pi, value = pi[0], float(value[0])
    if with_pi or with_value:
      return (action,) + (pi,) * bool(with_pi) + (value,) * bool(with_value)
    return action

  def act_async(self, rng_key: jax.Array, obs: Any, *, num_simulations: int, temperature: float,
                params: Any = None, invalid_actions: Any = None,
                obs_from_batch: bool = True) -> jax.Array:
    """Dispatches a search on `obs[B, ...]` with the default search settings.

    `invalid_actions` `[B, num_actions]` (1 = invalid) as in `act`; with
    `obs_from_batch=False`, `obs` is one observation searched as a batch of 1.

    Returns the packed `[B, 2 + A]` device array without waiting;
    `model.unpack(np.asarray(packed))` gives `(action, value, pi, extras)`.
    """
    obs, mask = self._act_inputs(rng_key, obs, obs_from_batch, num_simulations, invalid_actions)
    hyper = checks.search_settings(temperature, *_act_search_defaults())
    budget = (int(num_simulations), None, 16, jax.lax.fori_loop, None)
    return self._plans(budget)(self._state.params if params is None else params, rng_key,
                               obs, mask, hyper)

  def _act_inputs(self, rng_key, obs, obs_from_batch: bool, num_simulations,
                  invalid_actions) -> Tuple[np.ndarray, Any]:
    """`obs` as a checked batch `[B, ...]` and its mask, once the key and count
    are checked."""
    self._require_params("act")
    checks.prng_key(rng_key)
    obs = checks.array_of_numbers(obs, "batch of observations" if obs_from_batch else "observation")
    if not obs_from_batch:
      obs = obs[None]
    checks.observations(obs, self._obs_shape, obs_from_batch)
    checks.positive_int("num_simulations", num_simulations)
    return obs, self.variant.mask(invalid_actions, obs.shape[0], self._num_actions)

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

  # -- learning -------------------------------------------------------------

  def update(self, batch: Transition, *, return_priorities: bool = False) -> Union[dict, tuple]:
    """One gradient step on a batch `[B, K, ...]`; returns float metrics.

    A step is skipped (`'skipped': 1.`, state kept) when its loss or gradient
    is not finite, a float field holds NaN or inf, or a device array's action
    lies outside `[0, num_actions)`. With `set_reanalyze`, the batch's targets
    are refreshed first (it needs the bootstrap fields).

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
    priorities = np.asarray(metrics.pop(learning.PRIORITY))
    metrics = {k: float(v) for k, v in metrics.items()}
    return (metrics, priorities) if return_priorities else metrics

  def update_async(self, batch: Transition) -> dict:
    """`update` without waiting for the result: metrics stay on the device."""
    return self._learn(0, batch)

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
      return learning.mean_metrics(metrics), np.asarray(metrics[learning.PRIORITY])
    return learning.mean_metrics(metrics)

  def update_many_async(self, batches: Transition) -> dict:
    """`update_many` without waiting: per-step metrics `[U]` (priorities
    `[U, B]`) stay on the device."""
    return self._learn(1, batches)

  def _learn(self, many: int, batch: Transition) -> dict:
    """Checks `batch` on the host (shapes, no device sync; numpy values), then
    dispatches the jitted `update` (many=0) or `update_many` (many=1)."""
    what = ("update", "update_many")[many]
    self._require_params(what)
    self.variant.check_batch(batch, what=what, lead=2 + many, obs_shape=self._obs_shape,
                             num_actions=self._num_actions,
                             bootstrap=self._reanalyze is not None)
    if self._learners is None:  # built once per reanalysis setting
      self._learners = tuple(jax.jit(fn) for fn in self.update_functions())
    self._state, out = self._learners[many](self._state, batch)
    return learning.metrics_dict(out)

  def update_functions(self) -> Tuple[Callable, Callable]:
    """`(update, update_many)`, pure and not jitted: `update(state, batch[B, K,
    ...])` and `update_many(state, batches[U, B, K, ...])` return `(state,
    LearnerOutput)`. They use the model's networks, loss, optimizer and
    reanalysis setting, never its parameters, so a `muax.loop.Learner` (or a
    compiled loop) can own the `TrainState`."""
    return updates.update_functions(self, loss_fn=self._loss_fn)

  # -- reanalyze ------------------------------------------------------------

  reanalyze = property(attrgetter("_reanalyze"),
                       doc="The reanalysis settings, or None (see `set_reanalyze`).")
  target_params = _state_field("target_params", "The target network's parameters "
                               "(reanalysis), or None without it.")

  def set_reanalyze(self, config: Union[reanalyze_lib.Reanalyze, float, None]) -> None:
    """Turns reanalysis on (`muax.Reanalyze` or a fraction) or off (None).

    Updates then refresh the targets of part of each batch (`muax.reanalyze`);
    batches must come from `sample(..., bootstrap=(n, discount))`. The target
    network starts as a copy of the parameters, the update counter at 0.

    Raises:
      ValueError: invalid settings, or a policy reanalysis does not support.
    """
    config = reanalyze_lib.as_reanalyze(config)
    if config is not None:
      variants.require(self._policy, "reanalysis")
    self._reanalyze, self._learners = config, None
    if self._state is not None:
      self._state = reanalyze_lib.fresh_state(self._state.params, self._state.opt_state,
                                              config)

  train_state = property(attrgetter("_state"), doc=(
      "Everything learning depends on (params, optimizer state, target network, "
      "update counter, key), as one pytree; None before `init` or `load`."))

  def restore_train_state(self, state: TrainState) -> None:
    """Continues learning from `state` (a run state's saved `train_state`).

    Raises:
      ValueError: `state` does not have this model's structure and shapes.
    """
    self._require_params("restore_train_state")
    self._state = restore.train_state(state, self._state)

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
        file, init_params=self.variant.init, optimizer=self._optimizer,
        support_size=self._support_size, obs_shape=self._obs_shape,
        check_checkpoint=self.variant.check_checkpoint)
    self._state = reanalyze_lib.fresh_state(params, opt_state, self._reanalyze)
    return self

  def _require_params(self, what):
    if self._state is None:
      raise RuntimeError(f"call model.init(rng_key, sample_input) or model.load(path) "
                         f"before {what}()")

  params = _state_field("params", "`{'representation', 'prediction', 'dynamic'}`, or None "
                        "before `init` or `load`.")
  optimizer_state = _state_field("opt_state", "The optimizer's state, or None.")
  optimizer = property(attrgetter("_optimizer"), doc="The optax transformation.")
  support_size = property(attrgetter("_support_size"), doc="S: values over `-S..S`.")
  discount = property(attrgetter("_discount"), doc="The per-step discount.")
  two_player = property(attrgetter("_two_player"), doc="A two-player zero-sum game.")
  policy = property(attrgetter("_policy"), doc="The policy name ('muzero', ...).")
  num_actions = property(attrgetter("_num_actions"), doc="A, once initialised or loaded.")
  obs_shape = property(attrgetter("_obs_shape"), doc="One observation's shape, once known.")

  @property
  def search_discount(self) -> float:
    """The discount mctx applies per step: `-discount` in two-player games."""
    return -self._discount if self._two_player else self._discount

  def representation(self, obs: Any) -> Any:
    """Hidden state of `obs[B, ...]` under the current parameters."""
    return self._jitted_networks.representation(self._state.params["representation"], obs)

  def prediction(self, s: Any) -> Tuple[jax.Array, jax.Array]:
    """`(value_logits, policy_logits)` of hidden state `s`."""
    return self._jitted_networks.prediction(self._state.params["prediction"], s)

  def dynamic(self, s: Any, a: Any) -> Tuple[jax.Array, Any]:
    """`(reward_logits, next_s)` of hidden state `s` and actions `a[B]` (Sampled
    MuZero: `a[B, D]` in the Box's units, which the network sees normalised)."""
    return self._jitted_networks.dynamic(self._state.params["dynamic"], s,
                                         self.variant.model_action(a))


@functools.lru_cache(maxsize=None)
def _act_search_defaults():
  """`act`'s default search settings (`SEARCH_FIELDS` after temperature)."""
  params = inspect.signature(MuZero.act).parameters
  return tuple(float(params[name].default) for name in SEARCH_FIELDS[1:])

