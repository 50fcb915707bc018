"""Tests of muax.stochastic: Stochastic MuZero's codebook, search, loss and API."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import muax
from muax import checkpoint
from muax import stochastic
from muax.support import scalar_to_support

S = 5  # support size of the small models


def _small_model(num_actions=2, num_chance_outcomes=8, init=True, **kwargs):
  model = stochastic.build_model(num_actions, embedding_dim=8, hidden=32, support_size=S,
                                 num_chance_outcomes=num_chance_outcomes, **kwargs)
  if init:
    model.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.float32))
  return model


def _transitions(obs, a, r, num_actions):
  """A Transition `[B, K, ...]` whose returns are the rewards (one-step episodes)."""
  batch, k_steps = a.shape
  return muax.Transition(
      obs=obs, a=a, r=r, done=np.zeros((batch, k_steps), bool), Rn=r.copy(),
      v=np.zeros((batch, k_steps), np.float32),
      pi=np.full((batch, k_steps, num_actions), 1. / num_actions, np.float32),
      w=np.ones((batch, k_steps), np.float32))


# -- (a) the codebook learns a stochastic bandit -------------------------------

PROBS = np.array([0.6, 0.3, 0.1])
REWARDS = np.array([0., 2., 5.])


def _bandit_batch(rng, batch=64):
  """One action from `[1, 0, 0, 0]` to outcome `i` (obs `e_{1+i}`, reward
  `REWARDS[i]`) with probability `PROBS[i]`, then an absorbing step."""
  outcome = rng.choice(3, size=batch, p=PROBS)
  obs = np.zeros((batch, 2, 4), np.float32)
  obs[:, 0, 0] = 1.
  obs[np.arange(batch), 1, 1 + outcome] = 1.
  r = np.zeros((batch, 2), np.float32)
  r[:, 0] = REWARDS[outcome]
  return _transitions(obs, np.zeros((batch, 2), np.int32), r, 1)


def test_codebook_learns_outcome_probabilities_of_a_stochastic_bandit():
  model = stochastic.build_model(1, embedding_dim=8, hidden=32, support_size=S,
                                 num_chance_outcomes=32, optimizer=optax.adam(3e-3))
  model.init(jax.random.PRNGKey(1), np.zeros((1, 4), np.float32))
  rng = np.random.default_rng(1)
  batches = [_bandit_batch(rng) for _ in range(800)]
  metrics = model.update_many(jax.tree_util.tree_map(lambda *x: np.stack(x), *batches))
  assert metrics["skipped"] == 0.

  start = np.eye(4, dtype=np.float32)[:1]
  outcomes = np.eye(4, dtype=np.float32)[1:]
  codes = np.asarray(jnp.argmax(model.encode(np.repeat(start, 3, 0), outcomes), -1))
  assert len(set(codes.tolist())) == 3, f"outcomes share a code: {codes}"
  afterstate = model.afterstate(model.representation(start), np.zeros(1, np.int32))
  _, chance_logits = model.afterstate_prediction(afterstate)
  sigma = np.asarray(jax.nn.softmax(chance_logits[0]))
  # 51 200 sampled outcomes: the remaining error is the optimiser's, not sampling's.
  np.testing.assert_allclose(sigma[codes], PROBS, atol=0.07)
  assert sigma[codes].sum() > 0.95


# -- (b) the search weighs outcomes by their probability -----------------------


def _hand_made_bandit(p_win):
  """Two arms: 0 pays 1 surely (code 0); 1 pays 4 with `p_win` (code 2), else 0
  (code 1). No parameters: every network is a fixed function; discount 0 makes
  it one decision (the model would let the arms be pulled again)."""
  point = lambda x: jnp.log(scalar_to_support(x, S) + 1e-12)  # noqa: E731

  def representation_fn(obs):
    return jnp.zeros((obs.shape[0], 2))

  def prediction_fn(s):
    return point(jnp.zeros(s.shape[0])), jnp.zeros((s.shape[0], 2))

  def afterstate_dynamic_fn(s, a):
    del s
    return jax.nn.one_hot(a, 2)

  def afterstate_prediction_fn(afterstate):
    probs = jnp.array([[1., 0., 0.], [0., 1. - p_win, p_win]])
    chance_logits = jnp.log(afterstate @ probs + 1e-12)
    return point(jnp.zeros(afterstate.shape[0])), chance_logits

  def dynamic_fn(afterstate, code):
    reward = code @ jnp.array([1., 0., 4.])
    return point(reward), jnp.zeros((afterstate.shape[0], 2))

  model = muax.MuZero(representation_fn, prediction_fn, dynamic_fn, policy="stochastic",
                      support_size=S, discount=0., afterstate_dynamic_fn=afterstate_dynamic_fn,
                      afterstate_prediction_fn=afterstate_prediction_fn,
                      encoder_fn=lambda obs, next_obs: jnp.zeros((obs.shape[0], 3)),
                      num_chance_outcomes=3)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 1), np.float32))
  return model


@pytest.mark.parametrize("p_win, best_arm, value", [(0.2, 0, 1.), (0.8, 1, 3.2)])
def test_search_picks_the_arm_with_the_higher_expected_value(p_win, best_arm, value):
  # p_win=0.2: the risky arm has the higher maximum (4) and, over its outcomes
  # counted uniformly, the higher mean (2), but the lower expectation (0.8).
  model = _hand_made_bandit(p_win)
  action, pi, root_value = model.act(jax.random.PRNGKey(0), np.zeros(1, np.float32),
                                     with_pi=True, with_value=True, num_simulations=64,
                                     temperature=0.)
  assert action == best_arm
  assert pi[best_arm] > 0.7
  assert abs(root_value - value) < 0.25 * value


# -- (c) the API: construction, checkpoints, greedy acting, the loss ----------


def test_muzero_with_policy_stochastic_builds_a_stochastic_model():
  model = muax.MuZero(**stochastic.mlp_networks(2, 4, embedding_dim=8, hidden=16),
                      policy="stochastic")
  assert isinstance(model, stochastic.StochasticMuZero)
  assert model.policy == "stochastic" and model.num_chance_outcomes == 4


@pytest.mark.parametrize("change, error, match", [
    (dict(encoder_fn=None), ValueError, "encoder_fn"),
    (dict(afterstate_dynamic_fn=None), ValueError, "afterstate_dynamic_fn"),
    (dict(afterstate_prediction_fn=3), TypeError, "afterstate_prediction_fn"),
    (dict(num_chance_outcomes=0), ValueError, "num_chance_outcomes"),
    (dict(two_player=True), ValueError, "two_player"),
])
def test_bad_construction_arguments_raise(change, error, match):
  kwargs = dict(stochastic.mlp_networks(2, 4, embedding_dim=8, hidden=16), **change)
  with pytest.raises(error, match=match):
    muax.MuZero(policy="stochastic", **kwargs)


def test_networks_that_disagree_with_num_chance_outcomes_fail_at_init():
  kwargs = dict(stochastic.mlp_networks(2, 4, embedding_dim=8, hidden=16),
                num_chance_outcomes=6)
  model = muax.MuZero(policy="stochastic", **kwargs)
  with pytest.raises(ValueError, match="chance logits"):
    model.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.float32))


def test_greedy_act_is_deterministic_and_sampling_is_not():
  model = _small_model()
  obs = np.random.default_rng(0).random((5, 4)).astype(np.float32)
  greedy = [model.act(jax.random.PRNGKey(k), obs, obs_from_batch=True, with_pi=True,
                      num_simulations=12, temperature=0.) for k in range(3)]
  for action, pi in greedy[1:]:
    np.testing.assert_array_equal(action, greedy[0][0])
    np.testing.assert_array_equal(pi, greedy[0][1])
  sampled = {tuple(model.act(jax.random.PRNGKey(k), obs, obs_from_batch=True,
                             num_simulations=12, temperature=1.).tolist()) for k in range(6)}
  assert len(sampled) > 1


def test_save_load_roundtrip(tmp_path):
  model = _small_model()
  rng = np.random.default_rng(0)
  batch = _transitions(rng.random((4, 3, 4)).astype(np.float32),
                       rng.integers(0, 2, (4, 3)).astype(np.int32),
                       rng.random((4, 3)).astype(np.float32), 2)
  model.update(batch)
  path = model.save(str(tmp_path / "model"))
  fresh = _small_model(init=False)
  fresh.load(path)
  for got, want in zip(jax.tree_util.tree_leaves(fresh.params),
                       jax.tree_util.tree_leaves(model.params)):
    np.testing.assert_array_equal(got, want)
  assert sorted(fresh.params) == ["afterstate_dynamic", "afterstate_prediction", "dynamic",
                                  "encoder", "prediction", "representation"]
  obs = rng.random(4).astype(np.float32)
  assert fresh.act(jax.random.PRNGKey(3), obs, temperature=0.) == \
      model.act(jax.random.PRNGKey(3), obs, temperature=0.)
  assert checkpoint.load(path)[2]["num_chance_outcomes"] == 8
  with pytest.raises(checkpoint.CheckpointError):
    _small_model(num_chance_outcomes=4, init=False).load(path)


def test_loss_masks_the_last_steps_reward_and_needs_two_steps():
  model = _small_model()
  rng = np.random.default_rng(0)
  batch = _transitions(rng.random((4, 3, 4)).astype(np.float32),
                       rng.integers(0, 2, (4, 3)).astype(np.int32),
                       rng.random((4, 3)).astype(np.float32), 2)
  for _ in range(3):  # the reward head starts at zero: a uniform, target-blind loss
    model.update(batch)
  loss = lambda b: stochastic.default_loss_fn(model, model.params, b)  # noqa: E731
  base, metrics = loss(batch)
  last_changed = batch.replace(r=batch.r.copy())
  last_changed.r[:, -1] += 3.
  assert float(loss(last_changed)[0]) == pytest.approx(float(base))
  first_changed = batch.replace(r=batch.r.copy())
  first_changed.r[:, 0] += 3.
  assert float(loss(first_changed)[0]) > float(base)
  assert all(np.ndim(v) == 0 for k, v in metrics.items() if k != "priority")
  assert np.shape(metrics["priority"]) == (4,)  # per-window value errors (PER)
  with pytest.raises(ValueError, match="k_steps >= 2"):
    model.update(jax.tree_util.tree_map(lambda x: x[:, :1], batch))


# -- (d) end to end through muax.fit -------------------------------------------


def test_fit_trains_a_stochastic_model_end_to_end(tmp_path):
  model = _small_model(init=False)
  result = muax.train.run(
      model, env=stochastic.GambleEnv(2), test_env=stochastic.GambleEnv(2), max_episodes=4,
      test_interval=2, num_test_episodes=2, max_training_steps=20, num_simulations=6,
      k_steps=3, buffer_warm_up=2, num_trajectory=4, sample_per_trajectory=1,
      num_update_per_episode=5, progress=False, tensorboard_dir=str(tmp_path / "tb"),
      model_save_path=str(tmp_path / "models"), name="run")
  assert result.training_steps > 0 and result.env_steps > 0 and result.tests
  fresh = _small_model(init=False)
  fresh.load(result.best_path)
  assert fresh.act(jax.random.PRNGKey(0), np.zeros(4, np.float32)) in (0, 1)
  assert os.path.isdir(str(tmp_path / "models"))


def test_gamble_env_pays_for_reacting_to_the_coin():
  env = stochastic.GambleEnv(num_rounds=2)
  obs, _ = env.reset(seed=0)
  np.testing.assert_array_equal(obs, [1., 0., 0., 1.])
  obs, reward, done, _, _ = env.step(1)
  assert reward == 0. and not done and obs[1] + obs[2] == 1.
  obs, reward, done, _, _ = env.step(int(obs[2] == 1.))  # name the coin
  assert reward == 2. and not done and obs[0] == 1. and obs[3] == 0.5
  _, reward, done, _, _ = env.step(0)
  assert reward == 1. and done


def test_coin_bets_env_pays_by_bet_coin_and_action():
  env = stochastic.CoinBetsEnv(num_rounds=2)
  obs, _ = env.reset(seed=0)
  np.testing.assert_array_equal(obs, [1., 0., 0., 0., 0., 1.])
  obs, reward, done, _, _ = env.step(1)  # the long shot
  coin = int(obs[4] == 1.)
  assert reward == 0. and not done and obs[3] + obs[4] == 1.
  obs, reward, done, _, _ = env.step(1)  # cash out: +8 on heads, -10 on tails
  assert reward == (8. if coin else -10.) and not done and obs[0] == 1. and obs[5] == 0.5
  obs, _, _, _, _ = env.step(0)  # name the coin
  _, reward, done, _, _ = env.step(int(obs[2] == 1.))
  assert reward == 4. and done


def test_coin_bets_env_long_shot_is_worse_in_expectation_but_best_in_hindsight():
  p = np.asarray(stochastic.CoinBetsEnv.PAYOFFS)
  react = p.max(axis=2).mean(axis=1)  # best action on each side, coin averaged
  assert react.tolist() == [4., 1.]
  assert p[1, 1, 1] > react[0]  # "long shot, cash out" paid 8 whenever it was played


def test_coin_bets_env_mid_round_starts_and_bad_arguments():
  env = stochastic.CoinBetsEnv(mid_round_starts=1.)
  for seed in range(5):
    obs, _ = env.reset(seed=seed)
    assert obs[0] == 0. and obs[1:5].sum() == 1.
  with pytest.raises(ValueError, match="mid_round_starts"):
    stochastic.CoinBetsEnv(mid_round_starts=1.5)
  with pytest.raises(ValueError, match="payoffs"):
    stochastic.CoinBetsEnv(payoffs=np.zeros((2, 2)))
