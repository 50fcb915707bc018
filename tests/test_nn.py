import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import muax
from muax import nn


def test_min_max_normalize():
  s = jnp.array([[1., 3., 2.], [-4., -4., 0.]])
  np.testing.assert_allclose(nn.min_max_normalize(s), [[0., 1., .5], [0., 0., 1.]])
  planes = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 3, 4))
  out = nn.min_max_normalize2d(planes)
  np.testing.assert_allclose(out.reshape(2, -1).min(-1), 0.)
  np.testing.assert_allclose(out.reshape(2, -1).max(-1), 1., rtol=1e-6)


def test_mlp_factories_shapes():
  repr_fn = hk.without_apply_rng(hk.transform(nn._init_representation_func(nn.Representation, 6)))
  pred_fn = hk.without_apply_rng(hk.transform(nn._init_prediction_func(nn.Prediction, 3, 21)))
  dyn_fn = hk.without_apply_rng(hk.transform(nn._init_dynamic_func(nn.Dynamic, 6, 3, 21)))
  obs = jnp.ones((5, 4))
  key = jax.random.PRNGKey(0)
  rp = repr_fn.init(key, obs)
  s = repr_fn.apply(rp, obs)
  assert s.shape == (5, 6) and float(s.min()) >= 0 and float(s.max()) <= 1
  pp = pred_fn.init(key, s)
  v, logits = pred_fn.apply(pp, s)
  assert v.shape == (5, 21) and logits.shape == (5, 3)
  # Zero-initialised heads: value 0 and a uniform prior before training.
  np.testing.assert_allclose(muax.utils.support_to_scalar(jax.nn.softmax(v), 10), 0., atol=1e-4)
  dp = dyn_fn.init(key, s, jnp.zeros(5, jnp.int32))
  r, ns = dyn_fn.apply(dp, s, jnp.arange(5) % 3)
  assert r.shape == (5, 21) and ns.shape == (5, 6)


def test_resnet_model_acts_on_images():
  size = 21
  model = muax.MuZero(
      nn._init_resnet_representation_func(channels=8, num_blocks=1),
      nn._init_resnet_prediction_func(num_actions=3, full_support_size=size, channels=8),
      nn._init_resnet_dynamic_func(num_actions=3, full_support_size=size, channels=8))
  obs = np.random.default_rng(0).integers(0, 255, (2, 10, 10, 3), dtype=np.uint8)
  model.init(jax.random.PRNGKey(0), obs)
  a, pi, v = model.act(jax.random.PRNGKey(1), obs, with_pi=True, with_value=True,
                       obs_from_batch=True, num_simulations=4)
  assert a.shape == (2,) and pi.shape == (2, 3) and v.shape == (2,)
  assert model.representation(obs).shape == (2, 5, 5, 8)


def test_fast_elu_matches_jax_elu():
  import jax
  x = np.linspace(-20, 20, 4001).astype(np.float32)
  np.testing.assert_allclose(nn.elu(x), jax.nn.elu(x), atol=2e-7)
  # Gradients agree too (the networks are trained through it).
  g = jax.vmap(jax.grad(nn.elu))(x)
  np.testing.assert_allclose(g, jax.vmap(jax.grad(jax.nn.elu))(x), atol=2e-7)


def test_resnet_scales_uint8_images_after_the_model_casts_them():
  # MuZero hands uint8 observations to the representation as float32; the
  # ResNet still scales them to [0, 1] (nn.observation_dtype keeps the origin).
  size = 21
  model = muax.MuZero(
      nn._init_resnet_representation_func(channels=4, num_blocks=1),
      nn._init_resnet_prediction_func(num_actions=2, full_support_size=size, channels=4),
      nn._init_resnet_dynamic_func(num_actions=2, full_support_size=size, channels=4))
  obs = np.random.default_rng(0).integers(0, 255, (2, 6, 6, 3), dtype=np.uint8)
  model.init(jax.random.PRNGKey(0), obs)
  np.testing.assert_allclose(model.representation(obs),
                             model.representation(obs.astype(np.float32) / 255.), atol=1e-6)
  assert nn.observation_dtype(jnp.zeros(2, jnp.uint8)) == jnp.uint8  # outside the model
