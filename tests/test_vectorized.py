"""Vectorised self-play, fused updates and their wiring into `fit`."""
import gymnasium as gym
import jax
import numpy as np
import pytest

import muax
from muax import acting
from conftest import make_mlp_model
from tb_events import read_scalars
from test_train import SMALL, Corridor, _constant_value_model


def _counting(model):
  """Counts searches (`act` and the collector's dispatch) and their batch sizes."""
  calls = []
  act, dispatch = model.act, model.act_async

  def counted_act(key, obs, *args, **kwargs):
    calls.append(("act", np.shape(obs)[0] if kwargs.get("obs_from_batch") else 1))
    return act(key, obs, *args, **kwargs)

  def counted_dispatch(key, obs, **kwargs):
    calls.append(("dispatch", np.shape(obs)[0]))
    return dispatch(key, obs, **kwargs)

  model.act, model.act_async = counted_act, counted_dispatch
  return calls


def _random_batch(lead, k=3, obs_dim=4, seed=0):
  rng = np.random.default_rng(seed)
  return muax.Transition(
      obs=rng.normal(size=lead + (k, obs_dim)).astype(np.float32),
      a=rng.integers(0, 2, lead + (k,)).astype(np.int32),
      r=rng.normal(size=lead + (k,)).astype(np.float32), done=np.zeros(lead + (k,), bool),
      Rn=rng.uniform(0, 5, lead + (k,)).astype(np.float32),
      v=np.zeros(lead + (k,), np.float32),
      pi=np.full(lead + (k, 2), .5, np.float32), w=np.ones(lead + (k,), np.float32))


def test_update_many_equals_updates_in_turn():
  batches = _random_batch((4, 8))
  one_by_one, fused = make_mlp_model(), make_mlp_model()
  losses = [one_by_one.update(jax.tree_util.tree_map(lambda x: x[u], batches))["loss"]
            for u in range(4)]
  metrics = fused.update_many(batches)
  for a, b in zip(jax.tree_util.tree_leaves(one_by_one.params),
                  jax.tree_util.tree_leaves(fused.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert metrics["loss"] == pytest.approx(np.mean(losses), rel=1e-5)
  assert metrics["skipped"] == 0.
  with pytest.raises(ValueError, match=r"update_many expects \[U, B, K, 4\]"):
    fused.update_many(_random_batch((8,)))


def test_update_many_skips_and_counts_non_finite_steps():
  batches = _random_batch((3, 4))
  batches.Rn[1, 0, 0] = np.nan
  model = make_mlp_model()
  before = jax.tree_util.tree_leaves(model.params)
  metrics = model.update_many(batches)
  assert metrics["skipped"] == 1.
  after = jax.tree_util.tree_leaves(model.params)
  assert all(np.isfinite(x).all() for x in after)
  assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_replay_samples_several_batches_at_once():
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=0)
  for length in (5, 7, 9):
    trajectory = muax.Trajectory()
    for t in range(length):
      trajectory.add(muax.Transition(obs=np.full(4, t, np.float32), a=1, r=1., done=False,
                                     Rn=2., v=0., pi=np.full(2, .5, np.float32), w=1.))
    trajectory.finalize()
    buffer.add(trajectory)
  batches = buffer.sample(num_trajectory=3, sample_per_trajectory=2, k_steps=4, num_batches=5)
  assert batches.obs.shape == (5, 6, 4, 4) and batches.pi.shape == (5, 6, 4, 2)
  # Windows are consecutive steps of one trajectory.
  assert (np.diff(batches.obs[..., 0], axis=-1) == 1).all()
  assert len({batches.obs[u, :, 0, 0].tobytes() for u in range(5)}) > 1
  with pytest.raises(ValueError, match="num_batches must be a positive integer"):
    buffer.sample(num_trajectory=3, k_steps=4, num_batches=0)


def test_act_can_search_with_other_params():
  model, other = make_mlp_model(), make_mlp_model()
  rng = np.random.default_rng(1)
  other.restore_train_state(other.train_state.replace(params=jax.tree_util.tree_map(
      lambda x: x + rng.normal(scale=0.3, size=x.shape).astype(np.float32), other.params)))
  obs = np.linspace(-1, 1, 4).astype(np.float32)
  key = jax.random.PRNGKey(0)
  own = model.act(key, obs, with_pi=True, with_value=True, num_simulations=8)
  borrowed = model.act(key, obs, with_pi=True, with_value=True, num_simulations=8,
                       params=other.params)
  reference = other.act(key, obs, with_pi=True, with_value=True, num_simulations=8)
  assert borrowed[2] == pytest.approx(reference[2]) and borrowed[2] != pytest.approx(own[2])


def test_collector_plays_n_envs_with_one_search_per_step():
  model = make_mlp_model(obs_dim=2)
  calls = _counting(model)
  envs = acting.make_vector_env(lambda: Corridor(length=3), 3, mode="sync")
  collector = acting.VectorCollector(model, envs, acting.KeyStream(jax.random.PRNGKey(0)),
                                     num_simulations=4, tracer=muax.NStep(2, 0.9), seed=1)
  episodes = []
  for _ in range(12):
    episodes += collector.step(1.)
  # No truncation here: one batched search per step (plus the next step's, in flight).
  assert calls == [("dispatch", 3)] * 13
  assert collector.env_steps == 36
  assert len(episodes) >= 3
  for ep in episodes:
    b = ep.trajectory.batched_transitions
    assert b.obs.shape[1] == ep.length == int(ep.episode_return) + b.a[0].tolist().count(0)
    assert b.done[0, -1]  # terminated: the last step ends the episode
    assert ep.episode_return == 3.
    # Observations of one episode are consecutive: the position only grows.
    assert (np.diff(b.obs[0, :, 0]) >= 0).all()
  collector.close()


def test_collector_bootstraps_truncated_episodes():
  model = _constant_value_model(3.)
  envs = acting.make_vector_env(lambda: Corridor(length=None), 2, mode="sync",
                                max_episode_steps=3)
  collector = acting.VectorCollector(model, envs, acting.KeyStream(jax.random.PRNGKey(0)),
                                     num_simulations=4, tracer=muax.NStep(5, 0.9), seed=0)
  episodes = []
  for _ in range(3):
    episodes += collector.step(1.)
  assert len(episodes) == 2
  for ep in episodes:
    b = ep.trajectory.batched_transitions
    assert ep.length == 3 and not b.done.any()
    r = b.r[0]
    np.testing.assert_allclose(b.Rn[0, -1], r[2] + .9 * 3., atol=1e-3)
    np.testing.assert_allclose(b.Rn[0, 0], r[0] + .9 * r[1] + .81 * r[2] + .729 * 3.,
                               atol=1e-3)
  collector.close()


def test_vector_env_checks():
  with pytest.raises(ValueError, match="vectorization must be one of"):
    acting.make_vector_env(Corridor, 2, mode="threads")
  next_step = gym.vector.SyncVectorEnv([Corridor] * 2)  # default NEXT_STEP autoreset
  with pytest.raises(ValueError, match="SAME_STEP"):
    acting.check_vector_env(next_step)
  next_step.close()
  with pytest.raises(ValueError, match="discrete actions"):
    acting.make_vector_env(lambda: gym.make("Pendulum-v1"), 2)


def test_auto_vectorization_picks_sync_for_cheap_envs():
  envs = acting.make_vector_env(lambda: gym.make("CartPole-v1"), 2, mode="auto")
  assert isinstance(envs, gym.vector.SyncVectorEnv)
  envs.close()


def test_fit_with_num_envs_from_a_factory(tmp_path):
  made = []

  def corridor():
    made.append(Corridor())
    return made[-1]

  result = muax.train.run(make_mlp_model(obs_dim=2, init=False), env=corridor,
                          test_env=Corridor(), num_envs=3, tensorboard_dir=str(tmp_path),
                          model_save_path=str(tmp_path / "m"), name="vec", **SMALL)
  assert len(made) == 1 + 3  # a probe, then one per sub-environment
  assert result.episodes == 4 and result.training_steps == 20
  assert result.env_steps % 3 == 0 and result.env_steps >= 4 * 6
  fresh = make_mlp_model(obs_dim=2, init=False)
  fresh.load(result.best_path)
  scalars = read_scalars(str(tmp_path / "vec"))
  assert {"train/env_steps_per_s", "train/wall_clock", "train/loss"} <= set(scalars)


def test_fit_with_num_envs_is_deterministic(tmp_path):
  runs = [muax.train.run(make_mlp_model(obs_dim=2, init=False), env=Corridor,
                         test_env=Corridor(), num_envs=2, tensorboard_dir=str(tmp_path),
                         model_save_path=str(tmp_path / str(i)), **SMALL) for i in range(2)]
  fitted = [make_mlp_model(obs_dim=2, init=False).load(r.best_path) for r in runs]
  assert runs[0].env_steps == runs[1].env_steps
  for a, b in zip(jax.tree_util.tree_leaves(fitted[0].params),
                  jax.tree_util.tree_leaves(fitted[1].params)):
    np.testing.assert_array_equal(a, b)


def test_fit_with_num_envs_on_env_id_tests_in_parallel(tmp_path):
  gym.register(id="MuaxCorridorVec-v0", entry_point=Corridor, max_episode_steps=6)
  try:
    result = muax.train.run(make_mlp_model(obs_dim=2, init=False), env_id="MuaxCorridorVec-v0",
                            num_envs=2, tensorboard_dir=str(tmp_path),
                            model_save_path=str(tmp_path / "m"), **SMALL)
  finally:
    gym.registry.pop("MuaxCorridorVec-v0")
  assert result.episodes == 4
  # Greedy play walks right: 4 steps of reward 1, whatever the start.
  assert all(0. <= t.test_return <= 6. for t in result.tests)


def test_fit_num_envs_errors(tmp_path):
  common = dict(tensorboard_dir=str(tmp_path), model_save_path=str(tmp_path / "m"), **SMALL)
  with pytest.raises(ValueError, match="needs a function that makes the environment"):
    muax.fit(make_mlp_model(obs_dim=2, init=False), env=Corridor(), test_env=Corridor(),
             num_envs=2, **common)
  with pytest.raises(ValueError, match="num_envs must be a positive integer"):
    muax.fit(make_mlp_model(obs_dim=2, init=False), env=Corridor, test_env=Corridor(),
             num_envs=0, **common)
  with pytest.raises(ValueError, match="vectorization must be one of"):
    muax.fit(make_mlp_model(obs_dim=2, init=False), env=Corridor, test_env=Corridor(),
             num_envs=2, vectorization="gpu", **common)
  with pytest.raises(TypeError, match="env must be a gymnasium Env"):
    muax.fit(make_mlp_model(obs_dim=2, init=False), env=42, test_env=Corridor(), **common)


@pytest.mark.learning
def test_gumbel_at_4_simulations_learns_cartpole(tmp_path):
  """The CLI's networks with policy='gumbel' and 4 simulations beat random play
  (about 22) by far: a greedy test of 195 within 3,000 updates."""
  from muax import cli
  config = cli.TrainConfig(env_id="CartPole-v1", policy="gumbel", num_simulations=4)
  model = cli.build_model(config, 2)
  result = muax.train.run(
      model, env_id="CartPole-v1", tracer=muax.PNStep(10, 0.99, 0.5),
      buffer=muax.TrajectoryReplayBuffer(500, random_seed=0), max_episodes=80,
      max_training_steps=3000, test_interval=5, num_test_episodes=5, k_steps=10,
      num_trajectory=32, sample_per_trajectory=1, buffer_warm_up=32, num_simulations=4,
      random_seed=0, target_return=195., tensorboard_dir=str(tmp_path),
      model_save_path=str(tmp_path / "m"), progress=False)
  assert result.best_test_return >= 195., [t.test_return for t in result.tests]


def test_async_collector_in_worker_processes():
  model = make_mlp_model()
  envs = acting.make_vector_env(lambda: gym.make("CartPole-v1"), 2, mode="async")
  assert isinstance(envs, gym.vector.AsyncVectorEnv)
  collector = acting.VectorCollector(model, envs, acting.KeyStream(jax.random.PRNGKey(0)),
                                     num_simulations=2, tracer=muax.NStep(3, 0.9), seed=0)
  try:
    episodes = []
    while len(episodes) < 2:
      episodes += collector.step(1.)
  finally:
    collector.close()
  for ep in episodes:
    assert ep.trajectory.batched_transitions.obs.shape[1] == ep.length == ep.episode_return
