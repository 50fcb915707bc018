"""Malformed inputs to the public API: each gives a clear error or a documented
recovery, never a silent wrong result.

One case per malformed input (a test function or a `pytest.param` id). The
fit-level cases (environments returning NaN rewards or raising mid-episode, fit
hyperparameters, resume) live with `muax.fit`'s tests.
"""
import functools

import gymnasium as gym
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import muax
from muax import checkpoint, nn, utils
from conftest import make_mlp_model

KEY = jax.random.PRNGKey(0)
OBS = np.array([0.01, -0.02, 0.03, 0.01], np.float32)
SIZE = 21  # 2 * support_size + 1 for the default support_size=10


@functools.lru_cache(maxsize=None)
def _model():
  """One initialised model shared by the cases that raise before any search."""
  return make_mlp_model()


def _fns(embedding=8, num_actions=2, size=SIZE):
  return (nn._init_representation_func(nn.Representation, embedding),
          nn._init_prediction_func(nn.Prediction, num_actions, size),
          nn._init_dynamic_func(nn.Dynamic, embedding, num_actions, size))


def _batch(b=4, k=3, obs_dim=4, **changes):
  rng = np.random.default_rng(0)
  batch = muax.Transition(
      obs=rng.normal(size=(b, k, obs_dim)).astype(np.float32),
      a=rng.integers(0, 2, (b, k)).astype(np.int32), r=np.ones((b, k), np.float32),
      done=np.zeros((b, k), bool), Rn=np.full((b, k), 3., np.float32),
      v=np.zeros((b, k), np.float32), pi=np.tile([0.9, 0.1], (b, k, 1)).astype(np.float32),
      w=np.ones((b, k), np.float32))
  return batch.replace(**changes)


def _raises(fn, exc, match):
  with pytest.raises(exc, match=match):
    fn()


# -- MuZero constructor and muax.model.optimizer ------------------------------

CONSTRUCTOR_CASES = [
    pytest.param(dict(policy="MuZero"), ValueError, "unknown policy 'MuZero'",
                 id="policy-wrong-case"),
    pytest.param(dict(policy=None), ValueError, "unknown policy None", id="policy-none"),
    pytest.param(dict(support_size=0), ValueError, "support_size must be a positive integer",
                 id="support_size-zero"),
    pytest.param(dict(support_size=-3), ValueError, "support_size must be a positive integer",
                 id="support_size-negative"),
    pytest.param(dict(support_size=10.0), ValueError,
                 r"support_size must be a positive integer, got 10\.0", id="support_size-float"),
    pytest.param(dict(discount=float("nan")), ValueError, r"discount must be .*\[0, 1\].*nan",
                 id="discount-nan"),
    pytest.param(dict(discount=-0.1), ValueError, r"discount must be .*\[0, 1\]",
                 id="discount-negative"),
    pytest.param(dict(discount="0.99x"), TypeError, "discount must be a number",
                 id="discount-string"),
    pytest.param(dict(optimizer=optax.adam), TypeError,
                 "optimizer must be an optax.GradientTransformation", id="optimizer-factory"),
    pytest.param(dict(optimizer="adam"), TypeError,
                 "optimizer must be an optax.GradientTransformation", id="optimizer-string"),
    pytest.param(dict(loss_fn="mse"), TypeError, "loss_fn must be a function",
                 id="loss_fn-not-callable"),
]


@pytest.mark.parametrize("kwargs,exc,match", CONSTRUCTOR_CASES)
def test_constructor_rejects(kwargs, exc, match):
  _raises(lambda: muax.MuZero(*_fns(), **kwargs), exc, match)


def test_constructor_rejects_non_callable_network():
  _, pred, dyn = _fns()
  _raises(lambda: muax.MuZero(3, pred, dyn), TypeError,
          "representation_fn must be a function building Haiku modules, got 3")


@pytest.mark.parametrize("kwargs,match", [
    pytest.param(dict(peak_value=float("nan")), "peak_value must be a learning rate >= 0",
                 id="peak_value-nan"),
    pytest.param(dict(end_value=-1e-3), "end_value must be a learning rate >= 0",
                 id="end_value-negative"),
    pytest.param(dict(decay_rate=0.), "decay_rate must be a number > 0", id="decay_rate-zero"),
    pytest.param(dict(clip_by_global_norm=-1.), "clip_by_global_norm must be a number > 0",
                 id="clip-negative"),
    pytest.param(dict(warmup_steps=-5), "warmup_steps must be >= 0", id="warmup-negative"),
])
def test_optimizer_rejects(kwargs, match):
  _raises(lambda: muax.model.optimizer(**kwargs), ValueError, match)


# -- model.init ---------------------------------------------------------------

INIT_CASES = [
    pytest.param(lambda m: m.init(KEY, np.float32(1.)), ValueError,
                 r"sample_input must be a batch .*scalar", id="sample-scalar"),
    pytest.param(lambda m: m.init(KEY, np.zeros((0, 4), np.float32)), ValueError,
                 r"sample_input is an empty batch of shape \(0, 4\)", id="sample-empty-batch"),
    pytest.param(lambda m: m.init(KEY, np.full((1, 4), np.nan, np.float32)), ValueError,
                 "sample_input contains NaN or inf", id="sample-nan"),
    pytest.param(lambda m: m.init(KEY, np.array([["a", "b", "c", "d"]])), TypeError,
                 "sample_input must hold numbers", id="sample-strings"),
    pytest.param(lambda m: m.init(3, np.zeros((1, 4), np.float32)), TypeError,
                 "rng_key must be one JAX PRNG key", id="init-key-int"),
]


@pytest.mark.parametrize("call,exc,match", INIT_CASES)
def test_init_rejects(call, exc, match):
  model = make_mlp_model(init=False)
  _raises(lambda: call(model), exc, match)
  assert model.params is None  # nothing half-initialised


def test_init_rejects_dynamic_fn_changing_state_shape():
  repr_fn, pred_fn, _ = _fns()

  def dyn_fn(s, a):
    r, next_s = nn.Dynamic(8, 2, SIZE)(s, a)
    return r, next_s[:, :4]

  model = muax.MuZero(repr_fn, pred_fn, dyn_fn)
  _raises(lambda: model.init(KEY, np.zeros((1, 4), np.float32)), ValueError,
          r"dynamic_fn returned a next state of shape \(1, 4\).*\(1, 8\)")


def test_init_rejects_prediction_fn_with_wrong_value_width():
  repr_fn, _, dyn_fn = _fns()
  model = muax.MuZero(repr_fn, nn._init_prediction_func(nn.Prediction, 2, SIZE - 2), dyn_fn)
  _raises(lambda: model.init(KEY, np.zeros((1, 4), np.float32)), ValueError,
          r"prediction_fn returned value logits of shape \(1, 19\).*\(1, 21\)")


# -- act: every case raises before any search is compiled ----------------------

ACT_CASES = [
    pytest.param(dict(obs=np.zeros(3)), ValueError,
                 r"observation has shape \(3,\).*initialised for \(4,\)", id="obs-shape"),
    pytest.param(dict(obs=np.array([np.inf, 0., 0., 0.])), ValueError,
                 "observation contains NaN or inf", id="obs-inf"),
    pytest.param(dict(obs=np.array(["a", "b", "c", "d"])), TypeError,
                 "observation must hold numbers", id="obs-strings"),
    pytest.param(dict(obs=[0., [1., 2.], 0., 0.]), ValueError,
                 "observation must be an array of numbers", id="obs-ragged"),
    pytest.param(dict(obs=OBS, obs_from_batch=True), ValueError,
                 r"batch of observations has shape \(4,\).*\[B, 4\]", id="batch-1d"),
    pytest.param(dict(obs=np.zeros((0, 4)), obs_from_batch=True), ValueError,
                 "empty batch", id="batch-empty"),
    pytest.param(dict(num_simulations=0), ValueError,
                 "num_simulations must be a positive integer", id="num_simulations-zero"),
    pytest.param(dict(num_simulations=-2), ValueError,
                 "num_simulations must be a positive integer", id="num_simulations-negative"),
    pytest.param(dict(num_simulations=8.), ValueError,
                 r"num_simulations must be a positive integer, got num_simulations=8\.0",
                 id="num_simulations-float"),
    pytest.param(dict(temperature=-0.5), ValueError, "temperature must be a number >= 0",
                 id="temperature-negative"),
    pytest.param(dict(temperature=float("nan")), ValueError,
                 "temperature must be a number >= 0, got temperature=nan", id="temperature-nan"),
    pytest.param(dict(temperature="hot"), TypeError, "temperature must be a number",
                 id="temperature-string"),
    pytest.param(dict(dirichlet_fraction=1.5), ValueError,
                 "dirichlet_fraction must be a number >= 0 and <= 1", id="dirichlet_fraction"),
    pytest.param(dict(dirichlet_alpha=0.), ValueError, "dirichlet_alpha must be a number > 0",
                 id="dirichlet_alpha-zero"),
    pytest.param(dict(pb_c_base=0.), ValueError, "pb_c_base must be a number > 0",
                 id="pb_c_base-zero"),
    pytest.param(dict(gumbel_scale=-1.), ValueError, "gumbel_scale must be a number >= 0",
                 id="gumbel_scale-negative"),
    pytest.param(dict(max_depth=0), ValueError, "max_depth must be a positive integer",
                 id="max_depth-zero"),
    pytest.param(dict(max_num_considered_actions=0), ValueError,
                 "max_num_considered_actions must be a positive integer",
                 id="max_num_considered_actions-zero"),
    pytest.param(dict(invalid_actions=np.zeros(3)), ValueError,
                 r"invalid_actions has shape \(3,\); expected .*\(1, 2\)",
                 id="invalid_actions-shape"),
    pytest.param(dict(invalid_actions=np.ones(2)), ValueError,
                 "every action invalid", id="invalid_actions-all"),
    pytest.param(dict(obs=np.zeros((3, 4)), obs_from_batch=True,
                      invalid_actions=np.array([[0, 1], [1, 1], [1, 0]])), ValueError,
                 r"every action invalid for observation\(s\) \[1\]",
                 id="invalid_actions-all-in-one-row"),
    pytest.param(dict(invalid_actions=np.array([np.nan, 0.])), ValueError,
                 "invalid_actions must hold 0 .valid. or 1 .invalid.", id="invalid_actions-nan"),
    pytest.param(dict(invalid_actions=np.array([-1, 0])), ValueError,
                 "invalid_actions must hold 0 .valid. or 1 .invalid.",
                 id="invalid_actions-minus-one"),
    pytest.param(dict(rng_key=0), TypeError, "rng_key must be one JAX PRNG key",
                 id="rng_key-int"),
    pytest.param(dict(rng_key=np.zeros(2, np.float32)), TypeError,
                 r"rng_key must be one JAX PRNG key.*dtype float32", id="rng_key-float"),
    pytest.param(dict(rng_key=jax.random.split(KEY, 3)), TypeError,
                 r"rng_key must be one JAX PRNG key.*shape \(3, 2\)", id="rng_key-batch-of-keys"),
]


@pytest.mark.parametrize("kwargs,exc,match", ACT_CASES)
def test_act_rejects(kwargs, exc, match):
  kwargs = dict(kwargs)
  rng_key, obs = kwargs.pop("rng_key", KEY), kwargs.pop("obs", OBS)
  _raises(lambda: _model().act(rng_key, obs, **kwargs), exc, match)


def test_act_before_init():
  _raises(lambda: make_mlp_model(init=False).act(KEY, OBS), RuntimeError,
          r"call model.init\(rng_key, sample_input\) or model.load\(path\) before act")


# -- update / update_many -------------------------------------------------------

UPDATE_CASES = [
    pytest.param(lambda m: m.update(dict(_batch().__dict__)), TypeError,
                 "update expects a muax.Transition batch, got dict", id="batch-dict"),
    pytest.param(lambda m: m.update(_batch(obs_dim=3)), ValueError,
                 r"batch.obs has shape \(4, 3, 3\); update expects \[B, K, 4\]",
                 id="obs-shape"),
    pytest.param(lambda m: m.update(_batch(pi=np.full((4, 3, 3), 1 / 3, np.float32))),
                 ValueError, r"batch.pi has shape \(4, 3, 3\).*\(4, 3, 2\).*num_actions=2",
                 id="pi-num-actions"),
    pytest.param(lambda m: m.update(_batch(r=np.ones((4, 2), np.float32))), ValueError,
                 r"batch.r has shape \(4, 2\); update expects \[B, K\] = \(4, 3\)",
                 id="K-mismatch"),
    pytest.param(lambda m: m.update(_batch(Rn=np.ones((3, 3), np.float32))), ValueError,
                 r"batch.Rn has shape \(3, 3\); update expects \[B, K\] = \(4, 3\)",
                 id="B-mismatch"),
    pytest.param(lambda m: m.update(muax.Transition(obs=np.zeros((4, 3, 4), np.float32))),
                 ValueError, r"batch.a has shape \(\)", id="unbatched-fields"),
    pytest.param(lambda m: m.update(_batch(a=np.full((4, 3), 2, np.int32))), ValueError,
                 r"batch.a holds action 2 outside \[0, num_actions\) = \[0, 2\)",
                 id="action-too-large"),
    pytest.param(lambda m: m.update(_batch(a=np.full((4, 3), -1, np.int32))), ValueError,
                 r"batch.a holds action -1 outside", id="action-negative"),
    pytest.param(lambda m: m.update(_batch(a=np.full((4, 3), 0.5, np.float32))), ValueError,
                 "batch.a must hold integer actions, found 0.5", id="action-fractional"),
    pytest.param(lambda m: m.update_many(_batch()), ValueError,
                 r"batch.obs has shape \(4, 3, 4\); update_many expects \[U, B, K, 4\]",
                 id="update_many-unstacked"),
    pytest.param(lambda m: make_mlp_model(init=False).update(_batch()), RuntimeError,
                 r"before update\(\)", id="update-before-init"),
]


@pytest.mark.parametrize("call,exc,match", UPDATE_CASES)
def test_update_rejects(call, exc, match):
  model = _model()
  before = jax.tree_util.tree_leaves(model.params)
  _raises(lambda: call(model), exc, match)
  for x, y in zip(before, jax.tree_util.tree_leaves(model.params)):
    assert x is y  # no step was taken


@pytest.mark.parametrize("changes", [
    pytest.param(dict(r=np.full((4, 3), np.nan, np.float32)), id="reward-nan"),
    # An infinite return used to be clipped to the edge of the support: a finite
    # loss, and a silent step towards a wrong target.
    pytest.param(dict(Rn=np.full((4, 3), np.inf, np.float32)), id="return-inf"),
    pytest.param(dict(pi=np.full((4, 3, 2), np.nan, np.float32)), id="pi-nan"),
    # Device arrays are not read back on the host: out-of-range actions there
    # are caught on the device and the step is skipped.
    pytest.param(dict(a=jnp.full((4, 3), 5, jnp.int32)), id="device-action-out-of-range"),
])
def test_update_skips_bad_data_and_counts_it(changes):
  """Documented recovery: the step is skipped (`'skipped': 1.`), params unchanged."""
  model = _model()
  before = [np.asarray(x) for x in jax.tree_util.tree_leaves(model.params)]
  out = model.update(_batch(**changes))
  assert out["skipped"] == 1.
  for x, y in zip(before, jax.tree_util.tree_leaves(model.params)):
    np.testing.assert_array_equal(x, y)
  many = jax.tree_util.tree_map(lambda good, bad: jnp.stack([good, bad]),
                                _batch(), _batch(**changes))
  assert model.update_many(many)["skipped"] == 1.  # one of the two steps


# -- integer observations -------------------------------------------------------

def _linear_model():
  """A representation with a bare hk.Linear: given uint8 input it would build
  uint8 weights if the model did not cast the observations first."""

  def repr_fn(obs):
    return nn.min_max_normalize(hk.Linear(8)(jnp.reshape(obs, (obs.shape[0], -1))))

  _, pred_fn, dyn_fn = _fns()
  return muax.MuZero(repr_fn, pred_fn, dyn_fn,
                     optimizer=muax.model.optimizer(warmup_steps=0))


def test_uint8_observations_match_float32():
  obs = np.array([[3, 0, 250, 7]], np.uint8)
  as_uint8, as_float = _linear_model(), _linear_model()
  as_uint8.init(KEY, obs)
  as_float.init(KEY, obs.astype(np.float32))
  for x, y in zip(jax.tree_util.tree_leaves(as_uint8.params),
                  jax.tree_util.tree_leaves(as_float.params)):
    assert x.dtype == jnp.float32
    np.testing.assert_array_equal(x, y)
  a8, pi8, v8 = as_uint8.act(KEY, obs[0], with_pi=True, with_value=True, num_simulations=4)
  size = as_uint8.compiled_searches
  as_uint8.act(KEY, obs[0] + 1, num_simulations=4)
  assert as_uint8.compiled_searches == size  # no retrace per call
  a32, pi32, v32 = as_float.act(KEY, obs[0].astype(np.float32), with_pi=True,
                                with_value=True, num_simulations=4)
  assert a8 == a32 and v8 == v32
  np.testing.assert_array_equal(pi8, pi32)
  batch = _batch(obs=np.random.default_rng(1).integers(0, 255, (4, 3, 4)).astype(np.uint8))
  m8 = as_uint8.update(batch)
  m32 = as_float.update(batch.replace(obs=batch.obs.astype(np.float32)))
  assert m8["skipped"] == 0. and m8 == m32
  for x, y in zip(jax.tree_util.tree_leaves(as_uint8.params),
                  jax.tree_util.tree_leaves(as_float.params)):
    np.testing.assert_array_equal(x, y)


# -- tracers ------------------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    pytest.param(lambda: muax.NStep(0, 0.9), "n must be a positive integer", id="n-zero"),
    pytest.param(lambda: muax.NStep(True, 0.9), "n must be a positive integer, got n=True",
                 id="n-bool"),
    pytest.param(lambda: muax.NStep(3, -0.1), r"gamma must be in \[0, 1\]", id="gamma-negative"),
    pytest.param(lambda: muax.NStep(3, float("nan")), "gamma must be finite", id="gamma-nan"),
    pytest.param(lambda: muax.PNStep(3, 0.9, alpha=-0.5), "alpha must be >= 0",
                 id="alpha-negative"),
    pytest.param(lambda: muax.PNStep(3, 0.9, alpha=float("inf")), "alpha must be finite",
                 id="alpha-inf"),
])
def test_tracer_constructor_rejects(make, match):
  _raises(make, ValueError, match)


PI = np.array([0.5, 0.5])


@pytest.mark.parametrize("steps,match", [
    pytest.param([dict(r=float("inf"))], "reward must be finite, got r=inf", id="reward-inf"),
    pytest.param([dict(v=float("nan"))], "value must be finite, got v=nan", id="value-nan"),
    pytest.param([dict(done=False, truncated=True, bootstrap_value=float("nan"))],
                 "bootstrap_value must be finite", id="bootstrap-nan"),
    pytest.param([dict(pi=np.array([np.nan, 1.]))], "pi must be finite", id="pi-nan"),
    pytest.param([dict(), dict(pi=np.array([0.2, 0.3, 0.5]))],
                 r"pi has shape \(3,\), but earlier steps had \(2,\)", id="pi-length-changes"),
    pytest.param([dict(), dict(obs=np.zeros(3))],
                 r"obs has shape \(3,\), but earlier steps had \(4,\)", id="obs-shape-changes"),
    pytest.param([dict(a=-1)], "a must be a non-negative integer action, got a=-1",
                 id="action-negative"),
    pytest.param([dict(a=1.5)], "a must be a non-negative integer action", id="action-fractional"),
    pytest.param([dict(a=2)], "a=2 is out of range for pi with 2 actions",
                 id="action-out-of-range"),
    pytest.param([dict(w=-1.)], "priority must be >= 0", id="priority-negative"),
])
def test_tracer_add_rejects(steps, match):
  tracer = muax.NStep(2, 0.9)
  with pytest.raises(ValueError, match=match):
    for step in steps:
      kwargs = dict(obs=np.zeros(4), a=0, r=1., done=False, v=0., pi=PI)
      kwargs.update(step)
      tracer.add(kwargs.pop("obs"), kwargs.pop("a"), kwargs.pop("r"), kwargs.pop("done"),
                 **kwargs)
  assert not tracer  # the bad step emitted nothing


def test_tracer_add_after_done_without_reset_starts_a_new_episode():
  """Documented recovery: `done` flushes the cache, so steps added after it
  (old scripts never call reset) form a new episode and never mix with the
  previous one's returns."""
  tracer = muax.NStep(3, 0.9)
  for t in range(2):
    tracer.add(t, 0, 10., t == 1, v=0., pi=PI)
  for t in range(2):
    tracer.add(10 + t, 0, 1., t == 1, v=0., pi=PI)
  out = []
  while tracer:
    out.append(tracer.pop())
  assert [t.obs for t in out] == [0, 1, 10, 11]
  np.testing.assert_allclose([t.Rn for t in out], [19., 10., 1.9, 1.])
  assert all(t.done for t in out)


# -- load (the cases of tests/test_model.py are not repeated) ------------------

def test_load_checkpoint_with_different_num_actions(tmp_path):
  path = make_mlp_model(num_actions=3).save(str(tmp_path / "m"))
  _raises(lambda: make_mlp_model(init=False).load(path), checkpoint.CheckpointError,
          "do not fit this model's networks")


def test_load_checkpoint_for_other_observations_into_initialised_model(tmp_path):
  path = make_mlp_model(obs_dim=5).save(str(tmp_path / "m"))
  model = make_mlp_model()
  _raises(lambda: model.load(path), checkpoint.CheckpointError,
          r"saved for observations of shape \(5,\), this model was initialised for \(4,\)")
  assert model.obs_shape == (4,)


def test_load_checkpoint_from_another_optimizer(tmp_path):
  path = make_mlp_model().save(str(tmp_path / "m"))
  _raises(lambda: make_mlp_model(init=False, optimizer=optax.sgd(0.1)).load(path),
          checkpoint.CheckpointError, "optimizer state that does not fit")


def test_load_empty_file(tmp_path):
  (tmp_path / "empty.npz").write_bytes(b"")
  _raises(lambda: make_mlp_model(init=False).load(str(tmp_path / "empty.npz")),
          checkpoint.CheckpointError, "not a readable muax checkpoint")


# -- muax.test.test -----------------------------------------------------------

class _BoxActionEnv(gym.Env):
  observation_space = gym.spaces.Box(-1., 1., (4,), np.float32)
  action_space = gym.spaces.Box(-1., 1., (1,), np.float32)


def test_test_rejects_continuous_action_space():
  _raises(lambda: muax.test.test(_model(), _BoxActionEnv(), KEY, 2), ValueError,
          r"discrete actions, but env.action_space is Box")


def test_test_rejects_zero_episodes():
  _raises(lambda: muax.test.test(_model(), gym.make("CartPole-v1"), KEY, 2,
                                 num_test_episodes=0),
          ValueError, "num_test_episodes must be a positive integer, got 0")


def test_test_rejects_env_with_other_observations():
  env = gym.wrappers.TransformObservation(
      gym.make("CartPole-v1"), lambda o: o[:3],
      gym.spaces.Box(-np.inf, np.inf, (3,), np.float32))
  _raises(lambda: muax.test.test(_model(), env, KEY, 2, num_test_episodes=1),
          ValueError, r"observation has shape \(3,\), but the model was initialised for \(4,\)")


def test_test_rejects_env_with_another_number_of_actions():
  _raises(lambda: muax.test.test(_model(), gym.make("Acrobot-v1"), KEY, 2,
                                 num_test_episodes=1),
          ValueError, r"env.action_space has 3 actions, but the model's networks have 2")


# -- networks, support, wrappers ----------------------------------------------

@pytest.mark.parametrize("make,match", [
    pytest.param(lambda: nn._init_representation_func(nn.Representation, 0),
                 "embedding_dim must be a positive integer, got embedding_dim=0",
                 id="embedding_dim-zero"),
    pytest.param(lambda: nn._init_dynamic_func(nn.Dynamic, -8, 2, SIZE),
                 "embedding_dim must be a positive integer", id="dynamic-embedding_dim"),
    pytest.param(lambda: nn._init_prediction_func(nn.Prediction, 0, SIZE),
                 "num_actions must be a positive integer, got num_actions=0",
                 id="num_actions-zero"),
    pytest.param(lambda: nn._init_prediction_func(nn.Prediction, 2, 0),
                 "full_support_size must be a positive integer", id="full_support_size-zero"),
    pytest.param(lambda: nn._init_resnet_prediction_func(full_support_size=SIZE),
                 "num_actions must be a positive integer, got num_actions=None",
                 id="resnet-num_actions-missing"),
    pytest.param(lambda: hk.transform(lambda x: nn.Representation(2.5)(x)).init(KEY, OBS[None]),
                 "embedding_dim must be a positive integer", id="module-embedding_dim-float"),
])
def test_network_factories_reject(make, match):
  _raises(make, ValueError, match)


@pytest.mark.parametrize("call,match", [
    pytest.param(lambda: utils.scalar_to_support(jnp.ones(3), -2),
                 "support_size must be a positive integer, got support_size=-2",
                 id="scalar_to_support-negative"),
    pytest.param(lambda: utils.scalar_to_support(jnp.ones(3), 0),
                 "support_size must be a positive integer", id="scalar_to_support-zero"),
    pytest.param(lambda: utils.support_to_scalar(jnp.ones((1, 5)) / 5, -2),
                 "support_size must be a positive integer", id="support_to_scalar-negative"),
    pytest.param(lambda: utils.support_to_scalar(jnp.ones((1, 5)) / 5, 2.),
                 "support_size must be a positive integer", id="support_to_scalar-float"),
    pytest.param(lambda: utils.support_to_scalar(jnp.ones((1, 5)) / 5, 3),
                 r"probs has shape \(1, 5\); support_size=3 needs a last axis of .* = 7",
                 id="support_to_scalar-width"),
])
def test_support_rejects(call, match):
  _raises(call, ValueError, match)


@pytest.mark.parametrize("make,exc,match", [
    pytest.param(lambda: muax.wrappers.FrameStacking(gym.make("CartPole-v1"), 2.5), ValueError,
                 r"num_frames must be an integer >= 1, got num_frames=2\.5",
                 id="FrameStacking-float"),
    pytest.param(lambda: muax.wrappers.FrameStacking(gym.make("FrozenLake-v1"), 2), TypeError,
                 r"Box space.*Discrete\(16\)", id="FrameStacking-discrete-observations"),
    pytest.param(lambda: muax.wrappers.TrainMonitor(gym.make("CartPole-v1"), log_interval=-1),
                 ValueError, "log_interval must be an integer >= 0",
                 id="TrainMonitor-log_interval-negative"),
])
def test_wrappers_reject(make, exc, match):
  _raises(make, exc, match)


# -- fit: environments that give what muax cannot use -------------------------

_FIT = dict(max_episodes=1, test_interval=1, num_test_episodes=1, max_training_steps=10,
            num_simulations=2, k_steps=2, buffer_warm_up=1, num_trajectory=2,
            sample_per_trajectory=1, num_update_per_episode=1, progress=False)


class _Spaces(gym.Env):
  action_space = gym.spaces.Discrete(2)

  def __init__(self, space):
    self.observation_space = space

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    return self.observation_space.sample(), {}

  def step(self, action):
    return self.observation_space.sample(), 1., True, False, {}


@pytest.mark.parametrize("space, hint", [
    pytest.param(gym.spaces.Dict({"a": gym.spaces.Box(0., 1., (2,))}), "FlattenObservation",
                 id="Dict"),
    pytest.param(gym.spaces.Tuple([gym.spaces.Box(0., 1., (2,))]), "FlattenObservation",
                 id="Tuple"),
    pytest.param(gym.spaces.Text(5), "encode the text", id="Text"),
])
def test_fit_names_observation_spaces_it_cannot_use(tmp_path, space, hint):
  for num_envs in (1, 2):
    env = (lambda: _Spaces(space)) if num_envs > 1 else _Spaces(space)
    _raises(lambda: muax.fit(make_mlp_model(init=False, obs_dim=2), env=env,
                             test_env=_Spaces(space), num_envs=num_envs,
                             model_save_path=str(tmp_path / "m"),
                             tensorboard_dir=str(tmp_path / "tb"), **_FIT),
            ValueError, rf"arrays of numbers.*observation_space is {type(space).__name__}"
                        rf".*{hint}")


class _BadStep(gym.Wrapper):
  """CartPole whose third step returns what `change` makes of it."""

  def __init__(self, change):
    super().__init__(gym.make("CartPole-v1"))
    self.change, self.steps = change, 0

  def reset(self, **kwargs):
    self.steps = 0
    return self.env.reset(**kwargs)

  def step(self, action):
    out = list(self.env.step(action))
    self.steps += 1
    if self.steps == 3:
      self.change(out)
    return tuple(out)


def _set(index, value):
  return lambda out: out.__setitem__(index, value)


@pytest.mark.parametrize("change, match", [
    pytest.param(_set(1, np.array([1., 2.])), r"reward that is not a number: array\(\[1\., "
                 r"2\.\]\).*step 3", id="reward-array"),
    pytest.param(_set(1, np.array([1.])), "reward that is not a number", id="reward-array-1"),
    pytest.param(_set(1, None), "reward that is not a number: None", id="reward-None"),
    pytest.param(_set(1, "1.0"), "reward that is not a number: '1.0'", id="reward-string"),
    pytest.param(_set(2, "False"), "terminated='False' .*as a bool", id="terminated-string"),
    pytest.param(_set(2, np.array([False, True])), r"terminated=array", id="terminated-array"),
    pytest.param(_set(3, "no"), "truncated='no'", id="truncated-string"),
    pytest.param(_set(3, 2), "truncated=2", id="truncated-int-2"),
])
def test_fit_names_bad_step_values(tmp_path, change, match):
  _raises(lambda: muax.fit(make_mlp_model(init=False), env=_BadStep(change),
                           test_env=gym.make("CartPole-v1"),
                           model_save_path=str(tmp_path / "m"),
                           tensorboard_dir=str(tmp_path / "tb"), **_FIT),
          ValueError, match)


def test_bool_like_done_flags_and_numeric_spaces_are_accepted():
  from muax import acting
  for flag in (True, np.bool_(False), np.array(True), 0, np.int64(1), 1.0, np.float32(0.),
               jnp.array(True), jnp.array(0)):
    assert acting.checked_step(np.float32(1.5), flag, False, 1)[1] == bool(flag)
  assert acting.checked_step(jnp.float32(2.), False, False, 1)[0] == 2.
  rewards, terminated, _ = acting.checked_vector_step(
      np.ones(2, np.float32), np.array([0., 1.]), jnp.array([False, True]), 2, 1)
  assert terminated.tolist() == [False, True] and rewards.dtype == np.float64
  for space in (gym.spaces.Space(shape=(4,), dtype=np.float32), gym.spaces.Discrete(16),
                gym.spaces.MultiDiscrete([2, 3]), gym.spaces.MultiBinary(4)):
    acting.check_observation_space(space, "env.observation_space")


@pytest.mark.parametrize("kwargs, exc, match", [
    pytest.param(dict(max_episode_steps=value), ValueError,
                 f"max_episode_steps must be a positive integer or None, got "
                 f"max_episode_steps={value!r}", id=f"max_episode_steps-{value!r}")
    for value in (0, -3, 1.5, True, "100")
] + [
    pytest.param(dict(random_seed=value), ValueError,
                 rf"random_seed must be an integer in \[0, 2\*\*63\), got random_seed="
                 rf"{value!r}", id=f"random_seed-{value!r}")
    for value in (-1, None, 1.5, True, 2 ** 64)
] + [
    pytest.param(dict(name=3), TypeError, "name must be a path", id="name-int"),
    pytest.param(dict(model_save_path=""), TypeError, "model_save_path must be a path",
                 id="model_save_path-empty"),
    pytest.param(dict(save_name="a/b"), ValueError, "save_name must be a file name",
                 id="save_name-folder"),
    pytest.param(dict(save_name=".."), ValueError, "save_name must be a file name",
                 id="save_name-dots"),
    pytest.param(dict(temperature_fn=0.5), TypeError, "temperature_fn must be a function",
                 id="temperature_fn-number"),
    pytest.param(dict(log_all_metrics="yes"), TypeError, "log_all_metrics must be True or "
                 "False", id="log_all_metrics-string"),
    pytest.param(dict(progress="no"), TypeError, "progress must be True or False",
                 id="progress-string"),
    pytest.param(dict(tracer=10), TypeError, "tracer must be an n-step tracer",
                 id="tracer-int"),
    pytest.param(dict(buffer=[]), TypeError, "buffer must be a replay buffer",
                 id="buffer-list"),
    pytest.param(dict(env_id=None, env=gym.make("CartPole-v1"), test_env="CartPole-v1"),
                 TypeError, "test_env must be a gymnasium environment", id="test_env-string"),
    pytest.param(dict(env_id=5), TypeError, "env_id must be a registered gymnasium id",
                 id="env_id-int"),
])
def test_fit_names_settings_a_user_can_get_wrong(tmp_path, kwargs, exc, match):
  kwargs = {"env_id": "CartPole-v1", "tensorboard_dir": str(tmp_path / "tb"),
            "model_save_path": str(tmp_path / "m"), **_FIT, **kwargs}
  _raises(lambda: muax.fit(make_mlp_model(init=False), **kwargs), exc, match)
  assert not (tmp_path / "m").exists()  # refused before anything was written


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, "1000", None, True])
@pytest.mark.parametrize("name", ["warmup_steps", "transition_steps"])
def test_optimizer_rejects_bad_step_counts(name, value):
  _raises(lambda: muax.model.optimizer(**{name: value}), (TypeError, ValueError),
          f"{name} must be >= 0")


def test_test_rejects_bad_seed_and_step_cap():
  env = gym.make("CartPole-v1")
  _raises(lambda: muax.test.test(_model(), env, KEY, 2, 1, random_seed=-1), ValueError,
          "random_seed must be an integer")
  _raises(lambda: muax.test.test(_model(), env, KEY, 2, 1, max_episode_steps=0), ValueError,
          "max_episode_steps must be a positive integer")


def test_a_deprecated_env_id_keeps_gymnasiums_error_type(tmp_path):
  # Scripts of the old package catch gymnasium's own error; muax's message is added.
  for env_id, kind in (("LunarLander-v2", gym.error.DeprecatedEnv),
                       ("NoSuchEnv-v0", gym.error.NameNotFound)):
    with pytest.raises(kind, match=f"cannot make environment env_id='{env_id}'.*") as info:
      muax.fit(make_mlp_model(init=False), env_id=env_id)
    assert isinstance(info.value, ValueError)  # as muax raised it before
