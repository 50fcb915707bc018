"""Legal-action masks from the environment (`info["action_mask"]`, 1 = legal)."""
import gymnasium as gym
import jax
import numpy as np
import pytest

import muax
from muax import acting
from muax.loop.evaluation import evaluate
from conftest import make_mlp_model


class Trap(gym.Env):
  """Each step some of 4 actions are legal (the mask is also the observation's
  first 4 entries); an illegal action ends the episode with reward -100."""

  def __init__(self, length=12):
    self.length = length
    self.observation_space = gym.spaces.Box(0., 1., (5,), np.float32)
    self.action_space = gym.spaces.Discrete(4)
    self.illegal = 0

  def _mask(self):
    mask = (self.np_random.random(4) < 0.4).astype(np.int8)
    mask[self.np_random.integers(4)] = 1  # at least one legal action
    return mask

  def _out(self):
    obs = np.append(self.mask, self.t / self.length).astype(np.float32)
    return obs, {"action_mask": self.mask}

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    self.t, self.mask = 0, self._mask()
    return self._out()

  def step(self, action):
    if not self.mask[action]:
      self.illegal += 1
      obs, info = self._out()
      return obs, -100., True, False, info
    self.t += 1
    self.mask = self._mask()
    obs, info = self._out()
    return obs, 1., False, self.t >= self.length, info


def _model():
  return make_mlp_model(obs_dim=5, num_actions=4)


def test_invalid_actions_from_info():
  assert acting.invalid_actions({}) is None
  np.testing.assert_array_equal(acting.invalid_actions({"action_mask": np.array([1, 0, 1])}),
                                [0., 1., 0.])
  infos = {"action_mask": np.array([[1, 0], [0, 0]]), "_action_mask": np.array([True, False])}
  np.testing.assert_array_equal(acting.invalid_actions(infos, 2), [[0., 1.], [0., 0.]])


def test_episodes_and_greedy_tests_never_take_an_illegal_action():
  model, env = _model(), Trap()
  keys = acting.KeyStream(jax.random.PRNGKey(0))
  tracer = muax.PNStep(3, 0.9)
  for seed in range(8):
    episode = acting.run_episode(model, env, keys, num_simulations=4, temperature=1.,
                                 seed=seed, tracer=tracer)
    assert episode.episode_return == episode.length == 12
    pi = np.asarray(episode.trajectory.batched_transitions.pi[0])
    legal = np.asarray(episode.trajectory.batched_transitions.obs[0][:, :4])
    assert (pi[legal == 0] == 0).all()  # the policy targets are masked too
    # The mask is stored with each step (it is the observation's first entries).
    mask = np.asarray(episode.trajectory.batched_transitions.mask[0])
    np.testing.assert_array_equal(mask, legal == 1)
  assert muax.test.test(model, env, jax.random.PRNGKey(1), 4, 5, random_seed=0) == 12.
  assert env.illegal == 0


def test_vector_collection_never_takes_an_illegal_action():
  model = _model()
  envs = acting.make_vector_env(Trap, 3, mode="sync")
  collector = acting.VectorCollector(model, envs, acting.KeyStream(jax.random.PRNGKey(0)),
                                     num_simulations=4, tracer=muax.PNStep(3, 0.9), seed=0)
  episodes = []
  while len(episodes) < 6:
    episodes.extend(collector.step(1.))
  assert all(e.episode_return == e.length == 12 for e in episodes)
  assert all(env.unwrapped.illegal == 0 for env in envs.envs)
  for e in episodes:  # masks stored per sub-environment, aligned with the steps
    steps = e.trajectory.batched_transitions
    np.testing.assert_array_equal(np.asarray(steps.mask[0]), np.asarray(steps.obs[0][:, :4]) == 1)
  test_envs = acting.make_vector_env(Trap, 2, mode="sync")
  returns = evaluate(model, test_envs, acting.KeyStream(jax.random.PRNGKey(1)), 4,
                     num_simulations=4, seed=0)
  assert returns == [12.] * 4


def test_fit_trains_on_a_masked_environment_without_illegal_actions(tmp_path):
  env, test_env = Trap(), Trap()
  model = make_mlp_model(obs_dim=5, num_actions=4, init=False)
  result = muax.train.run(model, env=env, test_env=test_env, max_episodes=4, test_interval=2,
                          num_test_episodes=2, num_simulations=4, k_steps=3, buffer_warm_up=2,
                          num_trajectory=4, sample_per_trajectory=2, num_update_per_episode=3,
                          progress=False, tensorboard_dir=str(tmp_path / "tb"),
                          model_save_path=str(tmp_path / "m"))
  assert env.illegal == 0 and test_env.illegal == 0
  assert result.best_test_return == 12.


def test_replay_keeps_masks_and_the_absorbing_state_allows_every_action():
  model, env = _model(), Trap(length=3)
  keys = acting.KeyStream(jax.random.PRNGKey(0))
  buffer = muax.TrajectoryReplayBuffer(10, random_seed=0)
  for seed in range(4):
    buffer.add(acting.run_episode(model, env, keys, num_simulations=4, temperature=1.,
                                  seed=seed, tracer=muax.PNStep(2, 0.9)).trajectory)
  batch = buffer.sample(num_trajectory=4, k_steps=3, sample_per_trajectory=4)
  assert batch.mask.shape == (16, 3, 4) and batch.mask.dtype == bool
  # Episodes end by truncation here (no absorbing steps): every mask is the
  # observation's; a terminated copy gets all-legal masks past its end.
  np.testing.assert_array_equal(batch.mask, batch.obs[..., :4] == 1)
  steps = acting.run_episode(model, env, keys, num_simulations=4, temperature=1., seed=9,
                             tracer=muax.PNStep(2, 0.9)).trajectory
  ended = muax.Trajectory()
  for i in range(len(steps)):
    ended.add(steps.batched_transitions[0, i].replace(done=True))
  absorbing = muax.TrajectoryReplayBuffer(2, random_seed=0)
  absorbing.add(ended)
  window = absorbing.sample(batch_size=32, k_steps=6)
  past = np.arange(6)[None] >= 3
  assert window.mask[np.broadcast_to(past, (32, 6))].all()
  state_meta, arrays = buffer.state()
  restored = muax.TrajectoryReplayBuffer(1)
  restored.restore(state_meta, arrays)
  np.testing.assert_array_equal(restored.sample(batch_size=8, k_steps=3).mask,
                                buffer.sample(batch_size=8, k_steps=3).mask)


def test_buffer_refuses_mixing_trajectories_with_and_without_masks():
  with_mask, without = muax.Trajectory(), muax.Trajectory()
  with_mask.add(muax.Transition(obs=np.zeros(2), a=0, pi=np.ones(2) / 2, mask=np.ones(2, bool)))
  without.add(muax.Transition(obs=np.zeros(2), a=0, pi=np.ones(2) / 2))
  buffer = muax.TrajectoryReplayBuffer(4)
  buffer.add(with_mask)
  with pytest.raises(ValueError, match=r"optional fields 'none'|optional fields none"):
    buffer.add(without)


def test_policy_target_is_restricted_to_legal_actions():
  from muax.loss import muzero_loss, policy_target
  pi = np.array([[[0.5, 0.25, 0.25, 0.]], [[0., 0., 0., 1.]]], np.float32)  # [2, 1, 4]
  mask = np.array([[[1, 1, 0, 1]], [[1, 1, 0, 0]]], bool)
  batch = muax.Transition(obs=np.zeros((2, 1, 5), np.float32), a=np.zeros((2, 1), np.int32),
                          r=np.zeros((2, 1), np.float32), Rn=np.zeros((2, 1), np.float32),
                          pi=pi, mask=mask)
  target = np.asarray(policy_target(batch))
  np.testing.assert_allclose(target[0, 0], [2 / 3, 1 / 3, 0., 0.], rtol=1e-6)
  np.testing.assert_allclose(target[1, 0], [0.5, 0.5, 0., 0.])  # pi had no legal mass
  np.testing.assert_allclose(np.asarray(policy_target(batch.replace(mask=None))), pi)
  model = _model()
  # A non-uniform prior (the untrained one is uniform: the same loss for any target).
  leaves, tree = jax.tree_util.tree_flatten(model.params)
  noise = jax.random.split(jax.random.PRNGKey(3), len(leaves))
  model.params.update(jax.tree_util.tree_unflatten(tree, [
      x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, noise)]))
  masked, _ = muzero_loss(model.networks, model.params, batch, support_size=model.support_size)
  unmasked, _ = muzero_loss(model.networks, model.params, batch.replace(mask=None),
                            support_size=model.support_size)
  assert float(masked) != pytest.approx(float(unmasked))
  assert model.update(batch)["skipped"] == 0.
