"""The compiled loop (muax.loop.jitted): what it records, how it continues, that it learns."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import make_mlp_model
from jax_cartpole import CartPole
from muax.loop.jitted import CompiledConfig
from muax.loop.jitted import CompiledLoop
from muax.loop.jitted import temperature_at
from muax.loop.jitted import temperature_schedule


@chex.dataclass(frozen=True)
class CountParams:
  max_steps_in_episode: int = 5
  terminate_at: int = 100


@chex.dataclass(frozen=True)
class CountState:
  time: chex.Array


class CountEnv:
  """obs = (time, 0): reward = the time, a time limit or a termination."""
  num_actions = 2

  @property
  def default_params(self):
    return CountParams()

  def reset_env(self, key, params):
    del key, params
    state = CountState(time=jnp.zeros((), jnp.int32))
    return self._obs(state), state

  def step_env(self, key, state, action, params):
    del key, action
    state = CountState(time=state.time + 1)
    done = (state.time >= params.max_steps_in_episode) | (state.time >= params.terminate_at)
    return self._obs(state), state, state.time.astype(jnp.float32), done, {}

  @staticmethod
  def _obs(state):
    return jnp.stack([state.time.astype(jnp.float32), jnp.float32(0.)])


def small_config(**changes):
  return CompiledConfig(**{**dict(num_envs=3, num_simulations=4, k_steps=2, n=2, batch_size=8,
                                  capacity=64, learning_starts=6, discount=0.9), **changes})


@pytest.fixture(scope="module")
def count_model():
  return make_mlp_model(obs_dim=2, policy="gumbel")


@pytest.fixture(scope="module")
def count_loop(count_model):
  return CompiledLoop(count_model, CountEnv(), config=small_config())


def test_the_replay_records_the_stream_with_time_limits_bootstrapped(count_model, count_loop):
  loop = count_loop
  state, metrics = loop.run(loop.init(jax.random.PRNGKey(0)), 12)
  steps = jax.device_get(state.replay.steps)
  times = np.tile(np.arange(5), 3)[:12]
  for e in range(3):
    np.testing.assert_array_equal(steps["obs"][:12, e, 0], times)
    np.testing.assert_array_equal(steps["r"][:12, e], times + 1)
    np.testing.assert_array_equal(steps["truncated"][:12, e], times == 4)
    assert not steps["terminated"][:12, e].any()
  # The time limit's bootstrap is the greedy search value of the cut-off
  # observation (time 5), as the host loop computes it with `act`; the
  # parameters at that step are the first ones (no update before step 6).
  _, value = count_model.act(jax.random.PRNGKey(9), np.array([5., 0.], np.float32),
                             num_simulations=4, temperature=0., with_value=True,
                             params=jax.device_get(count_model.params))
  assert steps["bootstrap_value"][4, 0] == pytest.approx(value, rel=1e-5, abs=1e-6)
  assert (steps["bootstrap_value"][:12][times != 4] == 0.).all()
  assert int(state.env_steps) == 36
  np.testing.assert_array_equal(metrics["episodes"], np.where(np.arange(12) % 5 == 4, 3, 0))
  assert np.isnan(metrics["loss"][:5]).all() and np.isfinite(metrics["loss"][6:]).all()


def test_terminations_are_recorded_as_such(count_model):
  loop = CompiledLoop(count_model, CountEnv(), CountParams(terminate_at=3),
                      config=small_config())
  state, _ = loop.run(loop.init(jax.random.PRNGKey(0)), 7)
  steps = jax.device_get(state.replay.steps)
  np.testing.assert_array_equal(steps["terminated"][:7, 0], [0, 0, 1, 0, 0, 1, 0])
  assert not steps["truncated"][:7].any()


def test_a_run_saved_between_chunks_continues_exactly(count_loop):
  loop = count_loop
  straight, _ = loop.run(loop.init(jax.random.PRNGKey(1)), 12)
  straight, straight_metrics = loop.run(straight, 12)
  first, _ = loop.run(loop.init(jax.random.PRNGKey(1)), 12)
  # What a run state would save: the whole loop state, brought to the host.
  saved = jax.tree_util.tree_map(np.asarray, jax.device_get(first))
  second, second_metrics = loop.run(jax.tree_util.tree_map(jnp.asarray, saved), 12)
  for a, b in zip(jax.tree_util.tree_leaves(straight), jax.tree_util.tree_leaves(second)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(straight_metrics["loss"], second_metrics["loss"])
  assert int(straight.train.count) == 24 - 5 and int(straight.env_steps) == 72


def test_a_prioritized_run_writes_its_priorities_and_continues_exactly(count_model):
  loop = CompiledLoop(count_model, CountEnv(), config=small_config(
      replay="prioritized", priority_beta_steps=10))
  state = loop.init(jax.random.PRNGKey(2))
  assert state.replay.priority.shape == (64, 3) and float(state.replay.max_priority) == 1.
  first, _ = loop.run(state, 12)
  saved = jax.tree_util.tree_map(np.asarray, jax.device_get(first))
  second, _ = loop.run(jax.tree_util.tree_map(jnp.asarray, saved), 12)
  straight, _ = loop.run(loop.run(loop.init(jax.random.PRNGKey(2)), 12)[0], 12)
  for a, b in zip(jax.tree_util.tree_leaves(straight), jax.tree_util.tree_leaves(second)):
    np.testing.assert_array_equal(a, b)
  priority = np.asarray(straight.replay.priority)[:24]
  # 19 updates of 8 windows wrote |v - Rn| + epsilon over some of the 24 steps
  # stored per environment; the others kept the largest priority of their time.
  assert (priority != 1.).sum() >= 8 and np.isfinite(priority).all()
  assert float(straight.replay.max_priority) >= priority.max() - 1e-6
  with pytest.raises(ValueError, match="replay must be 'uniform' or 'prioritized'"):
    small_config(replay="per")
  with pytest.raises(ValueError, match="beta"):
    small_config(replay="prioritized", priority_beta=2.)


def test_it_refuses_a_model_it_cannot_run():
  with pytest.raises(RuntimeError, match="model.init"):
    CompiledLoop(make_mlp_model(init=False), CartPole())
  reanalysing = make_mlp_model()
  reanalysing.set_reanalyze(0.5)
  with pytest.raises(ValueError, match="does not reanalyse yet"):
    CompiledLoop(reanalysing, CartPole())
  searchless = make_mlp_model()
  searchless.variant = dataclasses.replace(searchless.variant, search=None)
  with pytest.raises(ValueError, match="runs policy 'muzero', 'gumbel', 'stochastic', "
                                       "'sampled', not policy='muzero'"):
    CompiledLoop(searchless, CartPole())


@pytest.mark.learning
def test_jax_cartpole_learns_in_the_compiled_loop():
  model = make_mlp_model(policy="gumbel")
  loop = CompiledLoop(model, CartPole(), config=CompiledConfig(
      num_envs=16, num_simulations=8, batch_size=64, capacity=1000, learning_starts=16))
  state = loop.init(jax.random.PRNGKey(0))
  best = 0.
  for chunk in range(20):  # at most 80,000 env steps
    state, _ = loop.run(state, 250)
    returns = loop.evaluate(state.train.params, jax.random.PRNGKey(chunk), 8, 500)
    best = max(best, float(np.mean(returns)))
    if best >= 300:
      break
  # A random policy scores about 22, and a broken learner stays near it.
  assert best >= 300, best


def test_the_jax_cartpole_steps_as_gymnasiums():
  import gymnasium as gym  # noqa: PLC0415
  env, params = CartPole(), CartPole().default_params
  obs, state = env.reset_env(jax.random.PRNGKey(3), params)
  host = gym.make("CartPole-v1").unwrapped
  host.reset(seed=0)
  host.state = np.asarray(obs, np.float64)
  actions = np.random.default_rng(0).integers(0, 2, 60)
  step = jax.jit(env.step_env)
  for t, a in enumerate(actions):
    obs, state, reward, done, _ = step(jax.random.PRNGKey(0), state, jnp.int32(a), params)
    host_obs, host_reward, terminated, _, _ = host.step(int(a))
    np.testing.assert_allclose(obs, host_obs, rtol=1e-4, atol=1e-5)
    assert float(reward) == host_reward and bool(done) == terminated
    if terminated:
      break
  assert t > 5


def test_the_acting_temperature_follows_its_schedule_in_updates():
  schedule = temperature_schedule(100)  # the host loop's default over 100 updates
  assert schedule == ((0, 1.), (50, .5), (75, .25))
  got = [float(temperature_at(schedule, jnp.int32(n))) for n in (0, 49, 50, 74, 75, 10**6)]
  assert got == [1., 1., .5, .5, .25, .25]
  assert float(temperature_at(.3, jnp.int32(5))) == pytest.approx(.3)
  with pytest.raises(ValueError, match="starting at 0 updates"):
    CompiledConfig(temperature=((5, 1.),))
  with pytest.raises(ValueError, match="in increasing order"):
    CompiledConfig(temperature=((0, 1.), (10, .5), (10, .25)))
  # MuZero's acting samples visit counts N^(1/T): at T = 1 it now and then
  # takes an action the search visited less than another; from the 40th
  # update on T is 0: never.
  model = make_mlp_model(policy="muzero")

  def off_argmax(temperature):
    loop = CompiledLoop(model, CartPole(), config=small_config(
        num_envs=8, num_simulations=16, temperature=temperature, learning_starts=2,
        capacity=64))
    state, _ = loop.run(loop.init(jax.random.PRNGKey(0)), 60)
    first_update = 60 - int(state.train.count)  # the iteration of the first update
    steps = jax.device_get(state.replay.steps)
    pi = steps["pi"][:60]  # [iterations, E, A]
    taken = np.take_along_axis(pi, steps["a"][:60, :, None], -1)[..., 0]
    # acting in iteration i sees i - first_update updates
    return (taken < pi.max(-1)).sum(axis=1), first_update + 40

  (always, _), (scheduled, greedy_from) = off_argmax(1.), off_argmax(((0, 1.), (40, 0.)))
  assert 40 < greedy_from < 55
  assert always[greedy_from:].sum() > 0 and scheduled[:greedy_from].sum() > 0, (
      always, scheduled)
  assert scheduled[greedy_from:].sum() == 0, scheduled


def test_an_env_whose_action_space_is_gymnax_style_method_is_not_checked():
  class WithMethod(CartPole):
    def action_space(self, params=None):  # gymnax's signature, not a gymnasium space
      raise AssertionError("not to be called")

  loop = CompiledLoop(make_mlp_model(), WithMethod(), config=CompiledConfig(
      num_envs=2, num_simulations=2, batch_size=4, capacity=16, learning_starts=4))
  state, _ = loop.run(loop.init(jax.random.PRNGKey(0)), 2)
  assert int(state.env_steps) == 4
