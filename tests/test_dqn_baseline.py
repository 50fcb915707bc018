"""The DQN baseline of benchmarks/dqn_minatar.py: TD targets, Huber loss, a tiny run."""
import io
import json

import jax
import numpy as np
import pytest

import scripts

pytest.importorskip("minatar")



def _dqn():
  return scripts.load("benchmarks/dqn_minatar.py", "dqn_minatar")


dqn = _dqn()

# Three transitions, two actions; the second one terminal.
Q_TM1 = np.array([[1., 2.], [0.5, -1.], [0., 3.]], np.float32)
A_TM1 = np.array([1, 0, 1], np.int32)
R_T = np.array([1., 0., -1.], np.float32)
DONE_T = np.array([0., 1., 0.], np.float32)
Q_T = np.array([[3., -2.], [10., 10.], [0.5, 0.2]], np.float32)


def test_td_error_and_huber_by_hand():
  # Targets at discount 0.9: 1 + 0.9 * 3 = 3.7; 0 (terminal); -1 + 0.9 * 0.5 = -0.55.
  # Errors against Q(s, a): 3.7 - 2 = 1.7; 0 - 0.5 = -0.5; -0.55 - 3 = -3.55.
  discount_t = 0.9 * (1. - DONE_T)
  errors = jax.vmap(dqn.td_error)(Q_TM1, A_TM1, R_T, discount_t, Q_T)
  np.testing.assert_allclose(errors, [1.7, -0.5, -3.55], rtol=1e-6)
  # Huber (delta 1): |x| - 0.5 beyond 1, x^2 / 2 inside.
  np.testing.assert_allclose(dqn.huber(errors), [1.2, 0.125, 3.05], rtol=1e-6)
  loss = dqn.batch_loss(Q_TM1, A_TM1, R_T, DONE_T, Q_T, 0.9)
  assert float(loss) == pytest.approx((1.2 + 0.125 + 3.05) / 3, rel=1e-6)


def test_no_gradient_through_the_target():
  grad_t = jax.grad(lambda q_t: dqn.batch_loss(Q_TM1, A_TM1, R_T, DONE_T, q_t, 0.9))(Q_T)
  np.testing.assert_array_equal(grad_t, np.zeros_like(Q_T))
  grad_tm1 = jax.grad(lambda q: dqn.batch_loss(q, A_TM1, R_T, DONE_T, Q_T, 0.9))(Q_TM1)
  # Only the taken actions get gradient: -clip(error, -1, 1) / B.
  expected = np.zeros_like(Q_TM1)
  expected[[0, 1, 2], A_TM1] = -np.clip([1.7, -0.5, -3.55], -1, 1) / 3
  np.testing.assert_allclose(grad_tm1, expected, rtol=1e-6)


def test_update_returns_the_network_loss_and_steps():
  config = dqn.Config(lr=1e-2)
  network, optimizer = dqn.q_network(2), dqn.make_optimizer(config)
  planes = (np.random.default_rng(0).integers(2, size=(6, 10, 10, 4)) * 255).astype(np.uint8)
  batch = dqn.Batch(planes[:3], A_TM1, R_T, DONE_T, planes[3:])
  params = network.init(jax.random.PRNGKey(0), batch.obs_tm1)
  target = jax.tree_util.tree_map(lambda x: x + 0.1, params)
  update = dqn.make_update(network, optimizer, 0.99)
  expected = dqn.batch_loss(network.apply(params, batch.obs_tm1), A_TM1, R_T, DONE_T,
                            network.apply(target, batch.obs_t), 0.99)
  new_params, opt_state, loss = update(params, target, optimizer.init(params), batch)
  assert float(loss) == pytest.approx(float(expected), rel=1e-5)
  _, _, loss2 = update(new_params, target, opt_state, batch)
  assert float(loss2) < float(loss)


def test_epsilon_schedule():
  config = dqn.Config(env_steps=1000, epsilon_fraction=0.1)
  assert dqn.epsilon_at(config, 0) == 1.
  assert dqn.epsilon_at(config, 50) == pytest.approx(0.55)
  assert dqn.epsilon_at(config, 100) == pytest.approx(0.1)
  assert dqn.epsilon_at(config, 999) == pytest.approx(0.1)


def _run(seed):
  out = io.StringIO()
  dqn.main(["--env-steps", "300", "--replay-start", "100", "--test-interval", "150",
            "--test-episodes", "2", "--target-update", "50", "--buffer-size", "200",
            "--seed", str(seed)], out=out)
  return [json.loads(line) for line in out.getvalue().splitlines()]


def test_tiny_run_completes_and_is_seeded():
  lines = _run(0)
  tests, summary = lines[:-1], lines[-1]
  assert [t["env_steps"] for t in tests] == [150, 300]
  assert all(t["bench"] == "dqn_minatar" for t in lines)
  assert summary["summary"] and summary["env_steps"] == 300
  assert summary["updates"] == 201  # from the step the buffer holds 100 transitions
  assert summary["sticky_action_prob"] == 0.1 and summary["max_episode_steps"] == 5000
  assert summary["best_test_return"] == max(t["test_return"] for t in tests)
  again = _run(0)
  assert [t["test_return"] for t in again[:-1]] == [t["test_return"] for t in tests]
  assert again[-1]["episodes"] == summary["episodes"]


def test_config_is_validated():
  with pytest.raises(ValueError, match="replay_start"):
    dqn.Config(replay_start=8, batch_size=32)
  with pytest.raises(ValueError, match="optimizer"):
    dqn.Config(optimizer="sgd")
