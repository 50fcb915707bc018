"""`acting.Actor`, the one step loop: one environment and N play by the same code."""
import gymnasium as gym
import jax
import numpy as np
import pytest

import muax
from muax import acting
from conftest import make_mlp_model
from test_train import Corridor


def _trajectory(episode):
  b = episode.trajectory.batched_transitions
  return {name: np.asarray(getattr(b, name)) for name in ("obs", "a", "r", "pi", "v", "done")}


def test_one_env_and_a_vector_of_one_play_the_same_episode():
  # Same model, same key stream, same seed: the single environment (searched
  # at the start of each step) and the vector of one (next search dispatched
  # before the bookkeeping) draw the same keys in the same order.
  model = make_mlp_model()
  single = acting.Actor(model, gym.make("CartPole-v1"),
                        acting.KeyStream(jax.random.PRNGKey(5)), num_simulations=4,
                        tracer=muax.PNStep(3, 0.99, 0.5))
  one = single.run_episode(1., seed=11)
  envs = acting.make_vector_env(lambda: gym.make("CartPole-v1"), 1, mode="sync")
  vector = acting.Actor(model, envs, acting.KeyStream(jax.random.PRNGKey(5)),
                        num_simulations=4, tracer=muax.PNStep(3, 0.99, 0.5), seed=11)
  finished = []
  while not finished:
    finished = vector.step(1.)
  vector.close()
  assert one.length == finished[0].length > 5
  assert one.episode_return == finished[0].episode_return
  ours, theirs = _trajectory(one), _trajectory(finished[0])
  for name in ours:
    np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
  assert single.env_steps == one.length


def test_an_actor_without_a_tracer_only_counts_returns():
  model = make_mlp_model(obs_dim=2)

  def play():
    actor = acting.Actor(model, Corridor(length=3), acting.KeyStream(jax.random.PRNGKey(0)),
                         num_simulations=4, max_episode_steps=20)
    return actor.run_episode(1., seed=0)

  episode = play()
  assert episode.trajectory is None
  # Reward 1 per step right: the episode ends early exactly when it reached the end.
  assert 0 <= episode.episode_return <= 3 and 3 <= episode.length <= 20
  assert (episode.length < 20) == (episode.episode_return == 3.)
  again = play()  # same keys, same seed: the same episode
  assert (again.episode_return, again.length) == (episode.episode_return, episode.length)


def test_a_single_env_is_cut_at_its_step_cap_and_bootstrapped():
  model = make_mlp_model(obs_dim=2)
  actor = acting.Actor(model, Corridor(length=None), acting.KeyStream(jax.random.PRNGKey(0)),
                       num_simulations=4, tracer=muax.NStep(5, 0.9), max_episode_steps=4)
  episode = actor.run_episode(1., seed=0)
  b = episode.trajectory.batched_transitions
  assert episode.length == 4 and not b.done[0].any()
  assert np.isfinite(np.asarray(b.Rn)).all()


def test_stop_abandons_the_episode():
  model = make_mlp_model()
  actor = acting.Actor(model, gym.make("CartPole-v1"), acting.KeyStream(jax.random.PRNGKey(0)),
                       num_simulations=2)
  calls = []

  def stop():
    calls.append(1)
    return len(calls) > 3

  with pytest.raises(acting.Stopped):
    actor.run_episode(1., seed=0, stop=stop)
  assert actor.env_steps == 3
