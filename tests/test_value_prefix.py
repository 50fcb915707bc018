"""Value prefix: targets, learning the sums of rewards, search rewards, plumbing."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muax
from muax import nn
from muax.support import logits_to_scalar

S = 10


def make_model(**kwargs):
  return muax.MuZero(nn._init_representation_func(nn.Representation, 8),
                     nn._init_prediction_func(nn.Prediction, 2, 2 * S + 1),
                     nn._init_dynamic_func(nn.Dynamic, 8, 2, 2 * S + 1), support_size=S,
                     value_prefix=True, prefix_hidden=16,
                     **dict(dict(prefix_horizon=3), **kwargs))


def test_prefix_targets_restart_every_horizon():
  r = np.array([[1., 2., 3., 4., 5., 6., 7.]])
  np.testing.assert_allclose(muax.value_prefix.prefix_targets(r, 3),
                             [[1., 3., 6., 4., 9., 15., 7.]])
  np.testing.assert_allclose(muax.value_prefix.prefix_targets(r, 10), np.cumsum(r, 1))


def test_value_prefix_builds_its_own_class_and_checks_options():
  model = make_model()
  assert isinstance(model, muax.value_prefix.ValuePrefixMuZero)
  assert "value_prefix" in str(__import__("inspect").signature(muax.MuZero))
  with pytest.raises(ValueError, match="value_prefix"):
    muax.MuZero(*([lambda x: x] * 3), value_prefix="yes")
  with pytest.raises(ValueError, match="value_prefix works with"):
    muax.value_prefix.ValuePrefixMuZero(*([lambda x: x] * 3), policy="stochastic")
  with pytest.raises(ValueError, match="prefix_horizon"):
    make_model(prefix_horizon=0)


def unrolled_rewards(model, params, obs, actions):
  """Per-step rewards the search would use: differences of the prefixes."""
  root = muax.value_prefix.make_root(model)(params, obs)
  recurrent = muax.value_prefix.make_recurrent_fn(model)
  node, rewards = root.embedding, []
  for a in actions:
    out, node = recurrent(params, None, jnp.full((obs.shape[0],), a, jnp.int32), node)
    rewards.append(np.asarray(out.reward))
  return np.stack(rewards, 1)


def test_learns_delayed_rewards_and_the_search_reads_them_back():
  # Rewards 0, 0, 5, 0, 1 along a fixed action sequence: the LSTM learns the
  # prefixes, and the search's edge rewards (prefix differences) match them.
  model = make_model(optimizer=muax.model.optimizer(peak_value=1e-2, warmup_steps=1))
  rng = np.random.default_rng(0)
  obs = rng.normal(size=(32, 5, 3)).astype(np.float32)
  actions = np.tile([0, 1, 1, 0, 1], (32, 1))
  r = np.tile([0., 0., 5., 0., 1.], (32, 1)).astype(np.float32)
  batch = muax.Transition(obs=obs, a=actions, r=r, done=np.zeros((32, 5), bool),
                          Rn=np.zeros((32, 5), np.float32), v=np.zeros((32, 5)),
                          pi=np.full((32, 5, 2), 0.5, np.float32), w=np.ones((32, 5)))
  model.init(jax.random.PRNGKey(0), obs[:, 0])
  first = model.update(batch)["reward_loss"]
  for _ in range(300):
    last = model.update(batch)["reward_loss"]
  assert last < 0.2 * first
  rewards = unrolled_rewards(model, model.params, obs[:4, 0], [0, 1, 1, 0, 1])
  np.testing.assert_allclose(rewards, r[:4], atol=0.5)


def test_search_resets_the_prefix_every_horizon():
  model = make_model(prefix_horizon=2)
  model.init(jax.random.PRNGKey(1), np.zeros((1, 3), np.float32))
  leaves, tree = jax.tree_util.tree_flatten(model.params)
  noise = np.random.default_rng(0)
  params = jax.tree_util.tree_unflatten(  # a prefix head that is not all zero
      tree, [x + 0.3 * noise.normal(size=x.shape).astype(np.float32) for x in leaves])
  obs = np.ones((2, 3), np.float32)
  rewards = unrolled_rewards(model, params, obs, [0, 1, 0])
  # Step 3 starts a fresh block: its reward is its own prefix, from zero state.
  root = muax.value_prefix.make_root(model)(params, obs)
  node = root.embedding
  recurrent = muax.value_prefix.make_recurrent_fn(model)
  for a in (0, 1):
    _, node = recurrent(params, None, jnp.zeros((2,), jnp.int32) + a, node)
  _, next_s = model.networks.dynamic(params["dynamic"], node.s, jnp.zeros((2,), jnp.int32))
  logits, _ = model.prefix_func.apply(params["value_prefix"], next_s,
                                      model.prefix_head.initial_state(2))
  np.testing.assert_allclose(rewards[:, 2], logits_to_scalar(logits, S), rtol=1e-5, atol=1e-6)
  assert not np.allclose(rewards[:, 1], 0.)


def test_fit_save_and_load(tmp_path):
  model = make_model(policy="gumbel")
  result = muax.train.run(
      model, env_id="CartPole-v1", max_episodes=2, num_simulations=4, k_steps=4,
      buffer_warm_up=2, num_trajectory=4, sample_per_trajectory=2, num_update_per_episode=2,
      test_interval=2, num_test_episodes=1, tensorboard_dir=str(tmp_path),
      model_save_path=str(tmp_path / "m"), progress=False, random_seed=0,
      buffer=muax.TrajectoryReplayBuffer(10, random_seed=0))
  assert set(model.params) == {"representation", "prediction", "dynamic", "value_prefix"}
  again = make_model(policy="gumbel")
  again.load(result.best_path)
  obs = np.zeros(4, np.float32)
  key = jax.random.PRNGKey(0)
  a1, v1 = again.act(key, obs, temperature=0., num_simulations=6, with_value=True)
  model.load(result.best_path)
  a2, v2 = model.act(key, obs, temperature=0., num_simulations=6, with_value=True)
  assert a1 == a2 and v1 == pytest.approx(v2)
  plain = muax.MuZero(nn._init_representation_func(nn.Representation, 8),
                      nn._init_prediction_func(nn.Prediction, 2, 2 * S + 1),
                      nn._init_dynamic_func(nn.Dynamic, 8, 2, 2 * S + 1), support_size=S)
  with pytest.raises(Exception, match="value_prefix|do not fit|metadata"):
    plain.load(result.best_path)
