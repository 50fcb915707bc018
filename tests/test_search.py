import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muax
from muax import search
from muax.core import search as core_search
from muax.support import scalar_to_support

S = 10
# MuZero's pUCT completes unvisited children with the lowest sibling value, so
# the arm to find is the one arm better than the root's value (0).
ARM_REWARDS = jnp.array([-0.5, -0.2, 1.0, -0.3])


def _logits_for(x):
  return jnp.log(scalar_to_support(x, S) + 1e-12)


def _bandit_model(policy):
  """A known model: reward r[a] for every action, value 0, uniform prior."""
  def repr_fn(obs):
    return obs

  def pred_fn(s):
    return _logits_for(jnp.zeros(s.shape[0])), jnp.zeros((s.shape[0], 4))

  def dyn_fn(s, a):
    return _logits_for(ARM_REWARDS[a]), s

  model = muax.MuZero(repr_fn, pred_fn, dyn_fn, policy=policy, support_size=S)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 3), np.float32))
  return model


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_bandit_best_arm(policy):
  model = _bandit_model(policy)
  for seed in range(5):
    a, pi = model.act(jax.random.PRNGKey(seed), np.zeros(3), with_pi=True,
                      num_simulations=32, temperature=0.)
    assert a == 2
    assert int(np.argmax(pi)) == 2


def test_bandit_respects_invalid_actions():
  model = _bandit_model("muzero")
  for seed in range(4):
    a, pi = model.act(jax.random.PRNGKey(seed), np.zeros(3), with_pi=True,
                      num_simulations=32, temperature=1.,
                      invalid_actions=np.array([0, 0, 1, 0]))
    assert a != 2 and pi[2] == 0.


def test_greedy_has_no_noise_old_defect_3():
  model = _bandit_model("muzero")
  pis = [model.act(jax.random.PRNGKey(k), np.zeros(3), with_pi=True, num_simulations=16,
                   temperature=0.)[1] for k in range(6)]
  for pi in pis[1:]:
    np.testing.assert_array_equal(pi, pis[0])
  noisy = [model.act(jax.random.PRNGKey(k), np.zeros(3), with_pi=True, num_simulations=16,
                     temperature=1.)[1] for k in range(6)]
  assert any(not np.array_equal(p, noisy[0]) for p in noisy[1:])


def test_recurrent_fn_uses_next_state_old_defect_1():
  # The value head reads s[:, 0]; the dynamics adds 1. The value that mctx sees
  # after a step must be that of the next state (s + 1), not of the parent.
  def repr_fn(obs):
    return obs

  def pred_fn(s):
    return _logits_for(s[:, 0]), jnp.zeros((s.shape[0], 2))

  def dyn_fn(s, a):
    return _logits_for(jnp.zeros(s.shape[0])), s + 1.

  model = muax.MuZero(repr_fn, pred_fn, dyn_fn, support_size=S)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 1), np.float32))
  recurrent_fn = search.make_recurrent_fn(model.networks, support_size=S, discount=0.9)
  s = jnp.array([[2.], [5.]])
  out, next_s = recurrent_fn(model.params, None, jnp.zeros(2, jnp.int32), s)
  np.testing.assert_allclose(next_s, s + 1.)
  np.testing.assert_allclose(out.value, [3., 6.], atol=1e-3)
  np.testing.assert_allclose(out.discount, [0.9, 0.9])
  root = search.root_fn(model.networks, model.params, s, support_size=S)
  np.testing.assert_allclose(root.value, [2., 5.], atol=1e-3)


def test_select_action_greedy_and_sampled():
  counts = jnp.array([[1, 7, 2], [0, 0, 5]])
  valid = jnp.zeros((2, 3))
  greedy = core_search.select_action(jax.random.PRNGKey(0), counts, valid, 0.)
  np.testing.assert_array_equal(greedy, [1, 2])
  draws = np.stack([core_search.select_action(jax.random.PRNGKey(k), counts, valid, 1.)
                    for k in range(400)])
  assert set(draws[:, 1]) == {2}  # never an unvisited action
  assert 0.6 < (draws[:, 0] == 1).mean() < 0.8  # 7 / 10
