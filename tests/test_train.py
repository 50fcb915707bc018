import inspect
import os

import gymnasium as gym
import jax
import numpy as np
import pytest

import muax
from muax import acting
from conftest import make_mlp_model
from tb_events import read_scalars


class Corridor(gym.Env):
  """Unregistered env, no spec: walk right (action 1) `length` times to finish.

  Reward 1 per step to the right; never terminates when `length` is None.
  """

  def __init__(self, length=4):
    self.length = length
    self.observation_space = gym.spaces.Box(-1., 100., (2,), np.float32)
    self.action_space = gym.spaces.Discrete(2)
    self.starts = []

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    self.pos = float(self.np_random.uniform(0., 0.5))
    self.starts.append(self.pos)
    return np.array([self.pos, 0.], np.float32), {}

  def step(self, action):
    self.pos += 1. if action == 1 else 0.
    done = self.length is not None and self.pos >= self.length
    return np.array([self.pos, 1.], np.float32), float(action == 1), done, False, {}


SMALL = dict(max_episodes=4, test_interval=2, num_test_episodes=2, max_training_steps=20,
             num_simulations=4, k_steps=3, buffer_warm_up=2, num_trajectory=4,
             sample_per_trajectory=1, num_update_per_episode=5, progress=False)


def _model(obs_dim=2):
  return make_mlp_model(obs_dim=obs_dim, init=False)


def test_fit_returns_loadable_best_checkpoint(tmp_path):
  model = _model()
  path = muax.fit(model, env=Corridor(), test_env=Corridor(), tensorboard_dir=str(tmp_path / "tb"),
                  model_save_path=str(tmp_path / "models"), save_name="p", **SMALL)
  assert path.startswith(str(tmp_path / "models")) and os.path.basename(path) == "p"
  fresh = _model()
  fresh.load(path)
  assert isinstance(fresh.act(jax.random.PRNGKey(0), np.zeros(2, np.float32)), int)
  assert os.path.exists(tmp_path / "models" / "latest" / "p.npz")


def test_a_buffer_made_without_a_seed_samples_with_fits_seed(tmp_path):
  # The README's script passes TrajectoryReplayBuffer(500) and random_seed: the
  # run must repeat, as random_seed's documentation promises.
  def run(buffer, folder):
    model = _model()
    muax.train.run(model, env=Corridor(), test_env=Corridor(), random_seed=3, buffer=buffer,
                   tensorboard_dir=str(tmp_path / folder / "tb"),
                   model_save_path=str(tmp_path / folder / "m"), **SMALL)
    return jax.tree_util.tree_leaves(model.params)

  first, second = muax.TrajectoryReplayBuffer(50), muax.TrajectoryReplayBuffer(50)
  a, b = run(first, "a"), run(second, "b")
  assert first.random_seed == second.random_seed == 3
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  # A seed the user gave is kept: another seed, another sample of windows.
  own = muax.TrajectoryReplayBuffer(50, random_seed=11)
  c = run(own, "c")
  assert own.random_seed == 11
  assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_last_episode_reaches_tensorboard_old_defect_12(tmp_path):
  result = muax.train.run(_model(), env=Corridor(), test_env=Corridor(), name="run",
                          tensorboard_dir=str(tmp_path), model_save_path=str(tmp_path / "m"),
                          log_all_metrics=True, **SMALL)
  scalars = read_scalars(str(tmp_path / "run"))
  assert max(step for step, _ in scalars["train/episode_return"]) == result.episodes == 4
  assert {"train/loss", "train/value", "train/n_step_return", "test/return",
          "train/training_step", "train/episode_length", "train/value_loss"} <= set(scalars)
  assert scalars["train/training_step"][-1][1] == 20


def test_each_episode_starts_differently_old_defect_5(tmp_path):
  env = Corridor()
  muax.fit(_model(), env=env, test_env=Corridor(), tensorboard_dir=str(tmp_path),
           model_save_path=str(tmp_path / "m"), **SMALL)
  assert len(env.starts) >= 6 and len(set(env.starts)) == len(env.starts)


def test_env_without_time_limit_or_spec_old_defect_10(tmp_path):
  # Never terminates and has no spec: the step cap truncates every episode.
  env, test_env = Corridor(length=None), Corridor(length=None)
  result = muax.train.run(_model(), env=env, test_env=test_env, tensorboard_dir=str(tmp_path),
                          model_save_path=str(tmp_path / "m"), max_episode_steps=7, **SMALL)
  assert result.env_steps == 7 * (2 + result.episodes)
  assert muax.test.test(_model_loaded(result.best_path), test_env, jax.random.PRNGKey(0), 2,
                        num_test_episodes=1, max_episode_steps=5) <= 5


def _model_loaded(path):
  model = _model()
  model.load(path)
  return model


def _constant_value_model(value=3.):
  """Predicts `value` everywhere and reward 0: the search value is about `value`."""
  import jax.numpy as jnp
  from muax.support import scalar_to_support

  def logits(x, batch):
    return jnp.log(scalar_to_support(jnp.full((batch,), x), 10) + 1e-12)

  def pred_fn(s):
    return logits(value, s.shape[0]), jnp.zeros((s.shape[0], 2))

  def dyn_fn(s, a):
    return logits(0., s.shape[0]), s

  model = muax.MuZero(lambda obs: obs, pred_fn, dyn_fn, discount=1.)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 2), np.float32))
  return model


def test_truncation_is_bootstrapped_termination_is_not_old_defect_6():
  model = _constant_value_model(3.)
  keys = acting.KeyStream(jax.random.PRNGKey(0))
  limited = gym.wrappers.TimeLimit(Corridor(length=None), max_episode_steps=3)
  ep = acting.run_episode(model, limited, keys, num_simulations=4, temperature=1.,
                          tracer=muax.NStep(5, 0.9), seed=0)
  b = ep.trajectory.batched_transitions
  assert ep.length == 3 and not b.done.any()
  r = b.r[0]
  # The cut episode's returns continue with the value (3) of the last observation.
  expected = [r[0] + .9 * r[1] + .81 * r[2] + .729 * 3., r[1] + .9 * r[2] + .81 * 3.,
              r[2] + .9 * 3.]
  np.testing.assert_allclose(b.Rn[0], expected, atol=1e-3)
  ep = acting.run_episode(model, Corridor(length=0), keys, num_simulations=4, temperature=0.,
                          tracer=muax.NStep(5, 0.9), seed=0)
  b = ep.trajectory.batched_transitions
  # Termination: no bootstrap, the target is the reward alone.
  assert b.done[0, -1] and b.Rn[0, -1] == b.r[0, -1]


def test_fresh_defaults_per_call_old_defect_7(tmp_path):
  params = inspect.signature(muax.fit).parameters
  assert params["tracer"].default is None and params["buffer"].default is None
  runs = [muax.train.run(_model(), env=Corridor(), test_env=Corridor(),
                         tensorboard_dir=str(tmp_path), model_save_path=str(tmp_path / str(i)),
                         **SMALL) for i in range(2)]
  # Same seed, fresh tracer and buffer each call: the same run twice.
  assert runs[0].env_steps == runs[1].env_steps
  assert [t.test_return for t in runs[0].tests] == [t.test_return for t in runs[1].tests]


def test_temperature_fn_called_with_keywords(tmp_path):
  calls = []

  def temperature_fn(*, max_training_steps, training_steps):
    calls.append((max_training_steps, training_steps))
    return 0.5

  muax.fit(_model(), env=Corridor(), test_env=Corridor(), tensorboard_dir=str(tmp_path),
           model_save_path=str(tmp_path / "m"), temperature_fn=temperature_fn, **SMALL)
  assert calls and all(m == 20 for m, _ in calls)
  assert muax.train.default_temperature_fn(max_training_steps=100, training_steps=10) == 1.
  assert muax.train.default_temperature_fn(max_training_steps=100, training_steps=60) == .5
  assert muax.train.default_temperature_fn(max_training_steps=100, training_steps=80) == .25


def test_fit_argument_errors(tmp_path):
  with pytest.raises(ValueError, match="exactly one of env_id and env"):
    muax.fit(_model(), env_id="CartPole-v1", env=Corridor())
  with pytest.raises(ValueError, match="exactly one of env_id and env"):
    muax.fit(_model())
  with pytest.raises(ValueError, match="test_env"):
    muax.fit(_model(), env=Corridor())
  with pytest.raises(ValueError, match="discrete actions.*Box"):
    muax.fit(_model(), env_id="Pendulum-v1")
  with pytest.raises(ValueError, match="env_id='NoSuchEnv-v0'"):
    muax.fit(_model(), env_id="NoSuchEnv-v0")
  with pytest.raises(ValueError, match="k_steps must be a positive integer"):
    muax.fit(_model(), env_id="CartPole-v1", k_steps=0)
  with pytest.raises(ValueError, match="num_simulations"):
    muax.fit(_model(), env_id="CartPole-v1", num_simulations=-2)
  model = make_mlp_model(obs_dim=3)
  with pytest.raises(ValueError, match=r"observation has shape \(2,\)"):
    muax.fit(model, env=Corridor(), test_env=Corridor(), tensorboard_dir=str(tmp_path),
             model_save_path=str(tmp_path / "m"), **SMALL)


@pytest.mark.learning
def test_fit_solves_cartpole_195(tmp_path):
  """End to end: the README's networks and settings reach a greedy test of 195."""
  discount = 0.99
  model = make_mlp_model(discount=discount, optimizer=muax.model.optimizer(
      init_value=0.02, peak_value=0.02, end_value=0.002, warmup_steps=5000,
      transition_steps=5000))
  result = muax.train.run(
      model, env_id="CartPole-v1", tracer=muax.PNStep(10, discount, 0.5),
      buffer=muax.TrajectoryReplayBuffer(500, random_seed=0), max_episodes=60,
      max_training_steps=3000,
      test_interval=5, num_test_episodes=5, k_steps=10, num_trajectory=32,
      sample_per_trajectory=1, buffer_warm_up=32, num_simulations=50, random_seed=0,
      target_return=195., tensorboard_dir=str(tmp_path), model_save_path=str(tmp_path / "m"),
      progress=False)
  assert result.best_test_return >= 195., [t.test_return for t in result.tests]


def test_registered_custom_env_by_id(tmp_path):
  gym.register(id="MuaxCorridor-v0", entry_point=Corridor, max_episode_steps=6)
  try:
    result = muax.train.run(_model(), env_id="MuaxCorridor-v0", tensorboard_dir=str(tmp_path),
                            model_save_path=str(tmp_path / "m"), **SMALL)
  finally:
    gym.registry.pop("MuaxCorridor-v0")
  assert result.episodes == 4 and result.best_path is not None


def test_run_takes_fits_arguments_by_keyword_with_fits_defaults():
  fit_params = inspect.signature(muax.fit).parameters
  run_params = inspect.signature(muax.train.run).parameters
  assert list(run_params) == list(fit_params)
  for name, param in run_params.items():
    assert param.default == fit_params[name].default, name
    if name != "model":
      assert param.kind is inspect.Parameter.KEYWORD_ONLY, name
  with pytest.raises(TypeError, match="num_simulation"):
    muax.train.run(_model(), env=Corridor(), test_env=Corridor(), num_simulation=3)
  with pytest.raises(TypeError):
    muax.train.run(_model(), "CartPole-v1")  # by keyword only, as before


def test_fit_config_is_frozen_and_fills_fits_none_defaults():
  config = muax.loop.config.FitConfig.from_arguments(
      **{name: p.default for name, p in inspect.signature(muax.fit).parameters.items()
         if name not in muax.loop.config.COMPONENTS})
  assert config.save_name == "model_params"
  assert config.temperature(0) == 1. and config.temperature(9_000) == .25
  with pytest.raises(AttributeError):
    config.num_simulations = 3
