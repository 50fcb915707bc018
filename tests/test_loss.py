import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muax
from muax.loss import scale_gradient, muzero_loss

S = 10


def _fixed_model():
  """Networks without parameters: value/reward logits 0, policy logits 20*s[:2]."""
  def repr_fn(obs):
    return obs

  def pred_fn(s):
    return jnp.zeros((s.shape[0], 2 * S + 1)), 20. * s[:, :2]

  def dyn_fn(s, a):
    return jnp.zeros((s.shape[0], 2 * S + 1)), s

  model = muax.MuZero(repr_fn, pred_fn, dyn_fn, support_size=S)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 2), np.float32))
  return model


def _batch(pi):
  obs = np.array([[[1., 0.]] * 2, [[0., 1.]] * 2], np.float32)  # [B=2, K=2, 2]
  return muax.Transition(obs=obs, a=np.zeros((2, 2), np.int32), r=np.ones((2, 2)),
                         done=np.zeros((2, 2), bool), Rn=np.full((2, 2), 5.),
                         v=np.zeros((2, 2)), pi=pi, w=np.ones((2, 2)))


def test_loss_by_hand_and_policy_pairs_old_defect_2():
  model = _fixed_model()
  # Each example's policy target matches its own logits [20, 0] / [0, 20].
  pi = np.array([[[1., 0.]] * 2, [[0., 1.]] * 2], np.float32)
  loss, metrics = muax.loss.default_loss_fn(model, model.params, _batch(pi))
  # Uniform logits over 21 atoms: value and reward cross-entropies are log 21;
  # the policy term is log(1 + e^-20) ~ 0. Averaged over B and K.
  assert float(metrics["value_loss"]) == pytest.approx(np.log(21), rel=1e-5)
  assert float(metrics["reward_loss"]) == pytest.approx(np.log(21), rel=1e-5)
  assert float(metrics["policy_loss"]) == pytest.approx(0., abs=1e-6)
  assert float(loss) == pytest.approx(2 * np.log(21), rel=1e-5)
  # Broadcasting [B, A] logits against [B, 1, A] targets would pair example 0's
  # logits with example 1's target and cost about 10 per pair.


def test_loss_weights_and_value_target():
  model = _fixed_model()
  pi = np.full((2, 2, 2), 0.5, np.float32)
  loss, _ = muzero_loss(model.networks, model.params, _batch(pi), support_size=S,
                        value_weight=0.25, reward_weight=0., policy_weight=0.)
  assert float(loss) == pytest.approx(0.25 * np.log(21), rel=1e-5)


def test_scale_gradient_halves_gradient():
  grad = jax.grad(lambda x: jnp.sum(scale_gradient(x, 0.5) * 3.))(jnp.ones(3))
  np.testing.assert_allclose(grad, 1.5)
  np.testing.assert_allclose(scale_gradient(jnp.arange(3.), 0.5), jnp.arange(3.))


def test_dynamics_gradient_halved_per_unroll_step():
  # next_s = s + b; the value head reads s. With K=3 the value losses at steps
  # 1 and 2 reach b through one and two dynamics steps: their gradient to b is
  # scaled by 0.5 and 0.5 + 0.25 (b enters s_1 and s_2 through s_2 = s_1 + b).
  import haiku as hk

  def repr_fn(obs):
    return obs

  def pred_fn(s):
    logits = jnp.concatenate([s, jnp.zeros((s.shape[0], 2 * S))], axis=-1)
    return logits, jnp.zeros((s.shape[0], 2))

  def dyn_fn(s, a):
    b = hk.get_parameter("b", (), init=jnp.zeros)
    return jnp.zeros((s.shape[0], 2 * S + 1)), s + b

  model = muax.MuZero(repr_fn, pred_fn, dyn_fn, support_size=S)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 1), np.float32))
  batch = muax.Transition(obs=np.zeros((1, 3, 1), np.float32), a=np.zeros((1, 3), np.int32),
                          r=np.zeros((1, 3)), done=np.zeros((1, 3), bool),
                          Rn=np.zeros((1, 3)), v=np.zeros((1, 3)),
                          pi=np.full((1, 3, 2), .5), w=np.ones((1, 3)))

  grads = jax.grad(lambda p: muzero_loss(model.networks, p, batch, support_size=S)[0])(
      model.params)
  g = float(jax.tree_util.tree_leaves(grads["dynamic"])[0])
  # d(value CE)/d(logit_0) at s=0 is softmax_0 - target_0 = 1/21 - 0 (target two-hot at 0 is atom S).
  per_logit = 1. / 21
  expected = per_logit * (0.5 + (0.5 + 0.25)) / 3  # mean over K=3 steps
  assert g == pytest.approx(expected, rel=1e-4)


def test_consistency_loss_by_hand():
  # Identity dynamics: the predicted state for step 1 is s_0 = obs[:, 0].
  model = _fixed_model()
  obs = np.array([[[1., 0.], [1., 0.]], [[1., 0.], [0., 1.]]], np.float32)
  batch = _batch(np.full((2, 2, 2), 0.5, np.float32)).replace(obs=obs)
  plain, _ = muax.loss.default_loss_fn(model, model.params, batch)
  loss_fn = muax.loss.make_loss_fn(consistency_weight=2.)
  loss, metrics = loss_fn(model, model.params, batch)
  # Cosine similarity 1 (same state) and 0 (orthogonal): mean -0.5 over the
  # two step-1 terms, weighted 2 and averaged over B*K = 4 steps.
  assert float(metrics["consistency_loss"]) == pytest.approx(-0.5)
  assert float(loss) == pytest.approx(float(plain) + 2. * (-1. - 0.) / 4.)


def test_consistency_loss_trains_the_dynamics_towards_the_next_embedding():
  model = muax.MuZero(
      muax.nn._init_representation_func(muax.nn.Representation, 8),
      muax.nn._init_prediction_func(muax.nn.Prediction, 2, 2 * S + 1),
      muax.nn._init_dynamic_func(muax.nn.Dynamic, 8, 2, 2 * S + 1), support_size=S,
      loss_fn=muax.loss.make_loss_fn(value_weight=0., reward_weight=0., policy_weight=0.,
                                     consistency_weight=1.),
      optimizer=muax.model.optimizer(peak_value=1e-2, warmup_steps=1))
  rng = np.random.default_rng(0)
  obs = rng.normal(size=(16, 4, 3)).astype(np.float32)
  model.init(jax.random.PRNGKey(0), obs[0])
  batch = muax.Transition(obs=obs, a=rng.integers(0, 2, (16, 4)), r=np.zeros((16, 4)),
                          done=np.zeros((16, 4), bool), Rn=np.zeros((16, 4)),
                          v=np.zeros((16, 4)), pi=np.full((16, 4, 2), 0.5), w=np.ones((16, 4)))
  first = model.update(batch)["consistency_loss"]
  for _ in range(60):
    last = model.update(batch)["consistency_loss"]
  assert last < first - 0.1


def test_make_loss_fn_checks_weights():
  with pytest.raises(ValueError, match="consistency_weight"):
    muax.loss.make_loss_fn(consistency_weight=-1.)
  assert muax.loss.make_loss_fn().weights["consistency_weight"] == 0.
