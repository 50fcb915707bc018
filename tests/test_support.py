import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muax import utils
from muax.support import h, h_inv, logits_to_scalar


def test_h_by_hand():
  # h(3) = sqrt(4) - 1 + 0.003; h(-8) = -(3 - 1) - 0.008
  np.testing.assert_allclose(h(jnp.array([3., -8., 0.])), [1.003, -2.008, 0.], atol=1e-6)


@pytest.mark.parametrize("x", [0., 0.5, -0.5, 1., 3., -7.25, 42., 250., -499.])
def test_h_inverse_round_trip(x):
  np.testing.assert_allclose(h_inv(h(jnp.float32(x))), x, rtol=1e-4, atol=1e-4)


def test_two_hot_by_hand():
  # h(3) = 1.003 lies between atoms 1 and 2 of the support -10..10.
  probs = np.asarray(utils.scalar_to_support(jnp.array(3.), 10))
  assert probs.shape == (21,)
  expected = np.zeros(21)
  expected[11], expected[12] = 0.997, 0.003
  np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_support_round_trip_batched():
  x = jnp.array([[0., 1., -1.], [10., -25., 99.]])
  probs = utils.scalar_to_support(x, 10)
  assert probs.shape == (2, 3, 21)
  np.testing.assert_allclose(probs.sum(-1), 1., atol=1e-6)
  np.testing.assert_allclose(utils.support_to_scalar(probs, 10), x, rtol=1e-3, atol=1e-3)


def test_clipped_beyond_support():
  # h(200) ~ 13.4 > S=10: the target clips to the top atom.
  probs = utils.scalar_to_support(jnp.array(200.), 10)
  assert probs[-1] == pytest.approx(1.)


def test_logits_to_scalar_matches_softmax_path():
  logits = jax.random.normal(jax.random.PRNGKey(0), (5, 21))
  np.testing.assert_allclose(logits_to_scalar(logits, 10),
                             utils.support_to_scalar(jax.nn.softmax(logits), 10), rtol=1e-6)
