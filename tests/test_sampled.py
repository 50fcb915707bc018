"""Tests for muax.sampled: Sampled MuZero over gymnasium Box action spaces."""
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muax
from muax import checkpoint
from muax import nn
from muax import sampled
from muax.support import scalar_to_support

S = 10
BOX = gym.spaces.Box(-1., 1., (1,), np.float32)


def _small_model(space=BOX, obs_dim=3, num_samples=8, init=True, **kwargs):
  model = sampled.build_model(space, embedding_dim=8, hidden=(16,), support_size=S,
                              num_samples=num_samples, **kwargs)
  if init:
    model.init(jax.random.PRNGKey(0), np.zeros((1, obs_dim), np.float32))
  return model


def _logits_for(x):
  return jnp.log(scalar_to_support(x, S) + 1e-12)


def _known_model(reward_fn, mean=0., log_std=0., space=BOX, num_samples=16):
  """Reward `reward_fn(u)` for normalised action u, value 0, a fixed Gaussian."""
  dim = space.shape[0]

  def repr_fn(obs):
    return obs

  def pred_fn(s):
    b = s.shape[0]
    params = jnp.concatenate([jnp.full((b, dim), mean), jnp.full((b, dim), log_std)], -1)
    return _logits_for(jnp.zeros(b)), params

  def dyn_fn(s, u):
    return _logits_for(reward_fn(u)), s

  model = muax.MuZero(repr_fn, pred_fn, dyn_fn, policy="sampled", support_size=S,
                      action_space=space, num_samples=num_samples)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 3), np.float32))
  return model


def _peak_reward(u):
  """Best at u = 0.6: 1 there, falling to -9 at u = -1."""
  return 1. - 4. * jnp.sum(jnp.square(u - 0.6), -1)


def _policy(model, obs):
  s = model.representation(obs)
  return np.asarray(model.prediction(s)[1])


@pytest.fixture(scope="module")
def small():
  """A small initialised model shared by the tests that do not train it."""
  return _small_model()


def test_model_dispatch_and_build(small):
  assert type(small) is sampled.SampledMuZero
  assert small.policy == "sampled" and small.num_actions == 8 and small.action_dim == 1
  assert small.search_policy == "gumbel"
  direct = muax.MuZero(nn._init_representation_func(nn.Representation, 8),
                       sampled._init_gaussian_prediction_func(action_dim=1,
                                                              full_support_size=21),
                       nn._init_dynamic_func(nn.Dynamic, 8, 1, 21), policy="sampled",
                       support_size=S, action_space=BOX)
  assert type(direct) is sampled.SampledMuZero and direct.num_samples == 16
  with pytest.raises(ValueError, match="policy params"):
    muax.MuZero(nn._init_representation_func(nn.Representation, 8),
                nn._init_prediction_func(nn.Prediction, 3, 21),
                nn._init_dynamic_func(nn.Dynamic, 8, 1, 21), policy="sampled",
                support_size=S, action_space=BOX).init(
                    jax.random.PRNGKey(0), np.zeros((1, 3), np.float32))


def test_sample_and_log_prob_match_the_gaussian():
  params = jnp.array([[0.3, np.log(0.5)]])
  u = sampled.sample_actions(jax.random.PRNGKey(0), params, 20000)
  x = np.arctanh(np.asarray(u))
  assert u.shape == (1, 20000, 1) and np.abs(u).max() < 1.
  np.testing.assert_allclose([x.mean(), x.std()], [0.3, 0.5], atol=0.02)
  # The mode of the density is the mean (before tanh).
  grid = jnp.tanh(jnp.linspace(-1., 1.6, 27))[None, :, None]
  assert abs(float(jnp.arctanh(grid[0, jnp.argmax(sampled.log_prob(params, grid)[0]), 0]))
             - 0.3) < 0.06
  np.testing.assert_allclose(
      sampled.log_prob(params, jnp.tanh(jnp.array([[[0.3]]])))[0, 0],
      -np.log(0.5) - 0.5 * np.log(2. * np.pi), rtol=1e-5)


def test_env_units_round_trip():
  low, high = np.array([-2., 0.]), np.array([2., 5.])
  u = np.array([[-1., -1.], [0., 0.5], [1., 1.]])
  a = sampled.to_env(u, low, high)
  np.testing.assert_allclose(a, [[-2., 0.], [0., 3.75], [2., 5.]])
  np.testing.assert_allclose(sampled.from_env(a, low, high), u)


def _bandit_batch(model, key, batch=32, target=0.7):
  """One window per row: candidates from the current policy, and a target
  that weights each candidate by closeness to `target` (an improved policy)."""
  obs = np.zeros((batch, 1, 3), np.float32)
  params = _policy(model, obs[:, 0])
  u = np.asarray(sampled.sample_actions(key, params, model.num_samples))  # [B, K, 1]
  score = -np.square(u[..., 0] - target) / 0.02
  pi = np.exp(score - score.max(-1, keepdims=True))
  pi /= pi.sum(-1, keepdims=True)
  a = u[np.arange(batch), pi.argmax(-1)]
  zeros = np.zeros((batch, 1), np.float32)
  return muax.Transition(obs=obs, a=a[:, None], r=zeros, done=zeros, Rn=zeros, v=zeros,
                         pi=pi[:, None].astype(np.float32), w=zeros + 1.,
                         candidates=u[:, None])


def test_policy_loss_moves_the_mean_towards_high_target_weight():
  import optax
  model = sampled.build_model(BOX, embedding_dim=8, hidden=(16,), support_size=S,
                              num_samples=16, optimizer=optax.adam(3e-3))
  model.init(jax.random.PRNGKey(0), np.zeros((1, 3), np.float32))
  obs = np.zeros((1, 3), np.float32)
  start = _policy(model, obs)[0]
  assert abs(np.tanh(start[0])) < 0.05
  keys = jax.random.split(jax.random.PRNGKey(1), 300)
  for key in keys:
    metrics = model.update(_bandit_batch(model, key))
    assert metrics["skipped"] == 0.
  mean, log_std = _policy(model, obs)[0]
  assert abs(np.tanh(mean) - 0.7) < 0.1, (mean, log_std)
  assert log_std < start[1]  # it also became more certain


def _one_step_bandit(search_policy):
  """Reward `_peak_reward(u)` for the first action, then an absorbing state
  with reward 0: value 0 everywhere is exact, so the search is judged alone."""
  def repr_fn(obs):
    return jnp.zeros_like(obs)

  def pred_fn(s):
    return _logits_for(jnp.zeros(s.shape[0])), jnp.zeros((s.shape[0], 2))

  def dyn_fn(s, u):
    return _logits_for(jnp.where(s[:, 0] > 0.5, 0., _peak_reward(u))), jnp.ones_like(s)

  model = muax.MuZero(repr_fn, pred_fn, dyn_fn, policy="sampled", support_size=S,
                      action_space=BOX, num_samples=16, search_policy=search_policy)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 3), np.float32))
  return model


def _regret(model, num_simulations, qtransform=None, rows=64):
  """Mean reward lost by the search policy's favourite over the best sample."""
  slot, candidates, pi, _ = sampled.plan(
      model.networks, model.params, jax.random.PRNGKey(3), jnp.zeros((rows, 3)),
      *jnp.array([1., 0., 0.3, 1.25, 19652., 1.]), num_samples=16,
      search_policy=model.search_policy, support_size=S, discount=0.99,
      num_simulations=num_simulations, qtransform=qtransform)
  rewards = np.asarray(_peak_reward(candidates))  # [rows, K]
  favourite = rewards[np.arange(rows), np.asarray(pi).argmax(-1)]
  assert (np.asarray(slot) >= 0).all() and (np.asarray(slot) < 16).all()
  return float(np.mean(rewards.max(-1) - favourite))


def test_gumbel_search_finds_the_best_sample():
  model = _one_step_bandit("gumbel")
  for num_simulations in (16, 32):
    assert _regret(model, num_simulations) == 0.
  greedy = model.act(jax.random.PRNGKey(0), np.zeros((8, 3)), obs_from_batch=True,
                     num_simulations=16, temperature=0.)
  assert np.abs(greedy - 0.6).max() < 0.25, greedy


def test_muzero_search_compares_samples_by_parent_completion():
  import mctx
  model = _one_step_bandit("muzero")
  # mctx's default completion (lowest sibling) keeps the first good sample.
  default = _regret(model, 64, qtransform=mctx.qtransform_by_parent_and_siblings)
  ours = _regret(model, 64)
  assert ours < 0.3 < default, (ours, default)
  greedy = model.act(jax.random.PRNGKey(0), np.zeros((8, 3)), obs_from_batch=True,
                     num_simulations=64, temperature=0.)
  assert np.abs(greedy - 0.6).max() < 0.4, greedy


def test_act_shapes_and_bounds():
  space = gym.spaces.Box(np.array([-2., 0.], np.float32), np.array([2., 5.], np.float32))
  model = _small_model(space, num_samples=6)
  a, pi, v = model.act(jax.random.PRNGKey(0), np.ones(3), with_pi=True, with_value=True,
                       num_simulations=8)
  assert a.shape == (2,) and pi.shape == (6,) and isinstance(v, float)
  assert space.contains(a) and abs(pi.sum() - 1.) < 1e-5
  a, pi = model.act(jax.random.PRNGKey(1), np.ones((5, 3)), obs_from_batch=True,
                    with_pi=True, num_simulations=8)
  assert a.shape == (5, 2) and pi.shape == (5, 6)
  assert all(space.contains(x) for x in a)
  # A policy far past the edges still acts within the Box (tanh, then a clip
  # of the float32 rounding).
  for mean in (-50., 50.):
    edge = _known_model(_peak_reward, mean=mean, log_std=-5., space=space, num_samples=4)
    a = edge.act(jax.random.PRNGKey(0), np.zeros(3), num_simulations=4)
    np.testing.assert_allclose(a, space.high if mean > 0 else space.low)
    assert space.contains(a)


def test_temperature_zero_is_deterministic(small):
  model = small
  acts = [model.act(jax.random.PRNGKey(k), np.ones(3), with_pi=True, num_simulations=8,
                    temperature=0.) for k in range(4)]
  for a, pi in acts[1:]:
    np.testing.assert_array_equal(a, acts[0][0])
    np.testing.assert_array_equal(pi, acts[0][1])
  sampled_actions = {float(model.act(jax.random.PRNGKey(k), np.ones(3), num_simulations=8,
                                     temperature=1.)[0]) for k in range(4)}
  assert len(sampled_actions) > 1  # exploration does depend on the key


def test_no_retrace_across_temperature_and_keys(small):
  model = small
  model.act(jax.random.PRNGKey(0), np.ones(3), num_simulations=4, temperature=1.)
  size = model.compiled_searches
  for k, t in ((1, 0.), (2, 0.5), (3, 1.)):
    model.act(jax.random.PRNGKey(k), np.ones(3), num_simulations=4, temperature=t)
  assert model.compiled_searches == size


def test_save_load_round_trip(tmp_path):
  model = _small_model()
  model.update(_bandit_batch(model, jax.random.PRNGKey(0), batch=4))
  path = model.save(tmp_path / "sampled")
  fresh = _small_model(init=False).load(path)
  obs = np.linspace(-1., 1., 3)
  a1, pi1 = model.act(jax.random.PRNGKey(0), obs, with_pi=True, num_simulations=8,
                      temperature=0.)
  a2, pi2 = fresh.act(jax.random.PRNGKey(0), obs, with_pi=True, num_simulations=8,
                      temperature=0.)
  np.testing.assert_array_equal(a1, a2)
  np.testing.assert_array_equal(pi1, pi2)
  with pytest.raises(checkpoint.CheckpointError, match="num_samples"):
    _small_model(init=False, num_samples=4).load(path)
  other = gym.spaces.Box(-2., 2., (1,), np.float32)
  with pytest.raises(checkpoint.CheckpointError, match="action"):
    _small_model(other, init=False).load(path)


def test_clear_errors(small):
  with pytest.raises(ValueError, match="Discrete"):
    sampled.build_model(gym.spaces.Discrete(3))
  with pytest.raises(ValueError, match="action_space"):
    muax.MuZero(lambda x: x, lambda s: s, lambda s, a: s, policy="sampled")
  with pytest.raises(ValueError, match="finite bounds"):
    sampled.build_model(gym.spaces.Box(-np.inf, np.inf, (1,)))
  with pytest.raises(ValueError, match=r"shape \(D,\)"):
    sampled.build_model(gym.spaces.Box(-1., 1., (2, 2)))
  for bad in (1, 0, -3, 2.5, "8", True):
    with pytest.raises(ValueError, match="num_samples"):
      _small_model(num_samples=bad, init=False)
  with pytest.raises(ValueError, match="search_policy"):
    _small_model(search_policy="alphazero", init=False)
  with pytest.raises(ValueError, match="entropy_weight"):
    _small_model(entropy_weight=-1., init=False)
  with pytest.raises(ValueError, match="implements policy='sampled'"):
    sampled.SampledMuZero(lambda x: x, lambda s: s, lambda s, a: s, policy="muzero",
                          action_space=BOX)
  model = small
  with pytest.raises(ValueError, match="continuous"):
    model.act(jax.random.PRNGKey(0), np.ones(3), invalid_actions=np.zeros(8))
  model.check_action_space(gym.spaces.Box(-1., 1., (1,), np.float32))
  for space in (gym.spaces.Discrete(8), gym.spaces.Box(-2., 2., (1,), np.float32),
                gym.spaces.Box(-1., 1., (2,), np.float32)):
    with pytest.raises(ValueError, match="built for"):
      model.check_action_space(space, "env.action_space")


def test_batch_checks():
  model = _small_model()
  batch = _bandit_batch(model, jax.random.PRNGKey(0), batch=4)
  with pytest.raises(ValueError, match="candidates is None"):
    model.update(batch.replace(candidates=None))
  with pytest.raises(ValueError, match=r"batch.a has shape \(4, 1\)"):
    model.update(batch.replace(a=batch.a[..., 0]))
  with pytest.raises(ValueError, match="batch.pi"):
    model.update(batch.replace(pi=batch.pi[..., :4]))
  with pytest.raises(ValueError, match="outside the action space"):
    model.update(batch.replace(a=batch.a + 3.))
  # NaN in a float field skips the step instead of corrupting the parameters.
  before = model.params
  metrics = model.update(batch.replace(candidates=batch.candidates * np.nan))
  assert metrics["skipped"] == 1.
  jax.tree_util.tree_map(np.testing.assert_array_equal, before, model.params)


def _pendulum_run(tmp_path, seed, **overrides):
  env = gym.make("Pendulum-v1")
  model = sampled.build_model(
      env.action_space, embedding_dim=64, hidden=(64,), support_size=30, num_samples=16,
      optimizer=muax.model.optimizer(peak_value=3e-3, end_value=3e-4, warmup_steps=100,
                                     transition_steps=2000))
  settings = dict(
      env_id="Pendulum-v1", tracer=muax.PNStep(10, 0.99, 0.5),
      buffer=muax.TrajectoryReplayBuffer(200, random_seed=seed), max_episodes=PENDULUM_EPISODES,
      max_training_steps=100 * PENDULUM_EPISODES,
      test_interval=10, num_test_episodes=5, num_simulations=16, k_steps=5,
      buffer_warm_up=2, num_trajectory=16, sample_per_trajectory=8,
      num_update_per_episode=100, temperature_fn=lambda **_: 1., random_seed=seed,
      progress=False, tensorboard_dir=str(tmp_path / "tb"),
      model_save_path=str(tmp_path / "models"))
  settings.update(overrides)
  return model, muax.train.run(model, **settings)


# Random torques score about -1200 to -1400 on Pendulum-v1 (an untrained model
# -1000 to -1600). Over 100 episodes (20,000 steps, about 50 s on 2 cores) the
# best greedy test (5 episodes, every 10 episodes) of seed 1 measured -199,
# -104 and -150 in three runs. Learning speed depends on the seed: seeds 0, 2
# and 3 measured -1104/-648, -660/-294 and -942/-215/-123.
PENDULUM_EPISODES = 100
PENDULUM_THRESHOLD = -700.


@pytest.mark.learning
def test_pendulum_learns_through_fit(tmp_path):
  model, result = _pendulum_run(tmp_path, seed=1)
  assert result.env_steps == 200 * (PENDULUM_EPISODES + 2)  # 2 warm-up episodes
  assert result.best_test_return > PENDULUM_THRESHOLD, [t.test_return for t in result.tests]
  # The stored transitions carry float actions and the searched candidates.
  best = sampled.build_model(gym.spaces.Box(-2., 2., (1,), np.float32), embedding_dim=64,
                             hidden=(64,), support_size=30, num_samples=16)
  best.load(result.best_path)
  a = best.act(jax.random.PRNGKey(0), np.array([1., 0., 0.]), num_simulations=16,
               temperature=0.)
  assert a.shape == (1,) and -2. <= a[0] <= 2.


def test_fit_with_vector_envs_stores_candidates(tmp_path):
  buffer = muax.TrajectoryReplayBuffer(20)
  _, result = _pendulum_run(tmp_path, seed=0, max_episodes=2, num_envs=2, buffer=buffer,
                            num_update_per_episode=2, test_interval=2,
                            num_test_episodes=2)
  assert result.training_steps > 0
  batch = buffer.sample(num_trajectory=2, k_steps=3, sample_per_trajectory=2)
  assert np.shape(batch.a)[-1] == 1 and np.shape(batch.candidates)[-2:] == (16, 1)
  assert np.abs(batch.candidates).max() <= 2.
  # The action taken is one of the candidates searched (before the end).
  hit = np.isclose(batch.candidates[..., 0], batch.a).any(-1)
  assert hit[:, 0].all()
