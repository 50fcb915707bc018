"""gymnax environments in the compiled loop: the adapter, and `muax train gymnax:<id>`."""
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muax import jax_envs

gymnax = pytest.importorskip("gymnax")


def test_an_episode_cut_by_the_clock_is_a_time_limit_and_a_fall_is_not():
  env, params = gymnax.make("CartPole-v1")
  short = jax_envs.GymnaxEnv(env, params.replace(max_steps_in_episode=5), name="CartPole-v1")
  assert (short.num_actions, short.observation_shape, short.max_steps) == (2, (4,), 5)
  obs, state = short.reset_env(jax.random.PRNGKey(0))
  for t in range(5):  # alternating pushes keep the pole up for five steps
    obs, state, reward, done, _ = short.step_env(jax.random.PRNGKey(t), state, jnp.int32(t % 2))
    assert obs.dtype == jnp.float32 and reward.dtype == jnp.float32 and float(reward) == 1.
    assert bool(done) == (t == 4) and bool(short.time_limit(state)) == (t == 4)
  env = jax_envs.make("gymnax:CartPole-v1")
  assert env.max_steps == 500 and env.default_params.max_steps_in_episode == 500
  obs, state = env.reset_env(jax.random.PRNGKey(0))
  for t in range(100):  # always pushing right tips the pole over long before 500 steps
    obs, state, _, done, _ = env.step_env(jax.random.PRNGKey(t), state, jnp.int32(1))
    if bool(done):
      break
  assert bool(done) and t < 50 and not bool(env.time_limit(state))


def test_minatar_planes_come_as_float32_images():
  env = jax_envs.make("gymnax:Breakout-MinAtar")
  assert (env.num_actions, env.observation_shape) == (3, (10, 10, 4))
  obs, state = env.reset_env(jax.random.PRNGKey(0))
  assert obs.dtype == jnp.float32 and set(np.unique(np.asarray(obs))) <= {0., 1.}
  obs, *_ = env.step_env(jax.random.PRNGKey(1), state, jnp.int32(0))
  assert obs.shape == (10, 10, 4) and obs.dtype == jnp.float32


def test_pendulum_has_a_box_and_unknown_environments_are_refused_by_name():
  env = jax_envs.make("gymnax:Pendulum-v1")
  assert env.num_actions is None and env.max_steps == 200
  assert env.action_space == gym.spaces.Box(-2., 2., (1,), np.float32)
  assert jax_envs.make("gymnax:CartPole-v1").action_space == gym.spaces.Discrete(2)
  with pytest.raises(ValueError, match="gymnax has no environment 'CartPole-v9'"):
    jax_envs.make("gymnax:CartPole-v9")
  with pytest.raises(ValueError, match="random_openings is for pgx games"):
    jax_envs.make("gymnax:CartPole-v1", random_openings=2)
  assert jax_envs.is_jax_env_id("gymnax:CartPole-v1") and not jax_envs.is_jax_env_id("CartPole-v1")


def small_sampled(action_space):
  from muax import sampled  # noqa: PLC0415
  model = sampled.build_model(action_space, embedding_dim=8, hidden=(16,), support_size=5,
                              num_samples=4)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 3), np.float32))
  return model


def test_sampled_muzero_acts_in_pendulums_box_in_the_compiled_loop():
  from muax.loop.jitted import CompiledConfig, CompiledLoop  # noqa: PLC0415
  env = jax_envs.make("gymnax:Pendulum-v1")
  loop = CompiledLoop(small_sampled(env.action_space), env, config=CompiledConfig(
      num_envs=4, num_simulations=4, k_steps=3, n=3, batch_size=8, updates_per_iteration=2,
      capacity=64, learning_starts=16))
  state, metrics = loop.run(loop.init(jax.random.PRNGKey(0)), 40)
  steps = jax.device_get(state.replay.steps)
  action, candidates = steps["a"][:40], steps["candidates"][:40]
  assert action.shape == (40, 4, 1) and candidates.shape == (40, 4, 4, 1)
  assert (np.abs(action) <= 2.).all() and (np.abs(candidates) <= 2.).all()
  assert np.unique(action).size > 100  # continuous torques, not a few fixed values
  # each torque applied is one of the candidates its search weighed
  assert (np.abs(candidates - action[:, :, None]) < 1e-6).all(-1).any(-1).all()
  np.testing.assert_allclose(steps["pi"][:40].sum(-1), 1., atol=1e-5)
  loss = np.asarray(metrics["loss"])
  assert np.isnan(loss[:15]).all() and np.isfinite(loss[15:]).all()  # from 16 steps stored
  returns = np.asarray(loop.evaluate(state.train.params, jax.random.PRNGKey(1), 2, 200))
  assert returns.shape == (2,) and (returns < 0.).all()


def test_a_model_and_an_environment_whose_actions_differ_are_refused():
  from conftest import make_mlp_model  # noqa: PLC0415
  from muax.loop.jitted import CompiledLoop  # noqa: PLC0415
  pendulum, cartpole = jax_envs.make("gymnax:Pendulum-v1"), jax_envs.make("gymnax:CartPole-v1")
  with pytest.raises(ValueError, match="the environment's action space .*Box"):
    CompiledLoop(make_mlp_model(obs_dim=3), pendulum)
  with pytest.raises(ValueError, match=r"the environment's action space is Discrete\(2\), but "
                                       "this Sampled MuZero model was built for Box"):
    CompiledLoop(small_sampled(pendulum.action_space), cartpole)


def test_muax_train_gymnax_pendulum_trains_sampled_muzero(tmp_path, capsys):
  from muax import cli  # noqa: PLC0415
  code = cli.main(["train", "gymnax:Pendulum-v1", "--max-training-steps", "2",
                   "--num-envs", "4", "--num-simulations", "2", "--num-samples", "4",
                   "--num-trajectory", "4", "--num-test-episodes", "2",
                   "--logdir", str(tmp_path / "tb"), "--save-dir", str(tmp_path / "models"),
                   "--no-progress"])
  assert code == 0 and "best checkpoint" in capsys.readouterr().out
  given = dict(env_id="gymnax:Pendulum-v1", num_samples=4)
  setup = cli.cli_compiled.compiled_setup(cli.config_from_args(given, given=set(given)))
  assert setup["model"].policy == "sampled" and setup["test_max_steps"] == 200
  assert setup["loop_config"].capacity == 40_000 // 16
  setup["model"].load(tmp_path / "models" / "compiled_run.npz")  # the run state fits the nets
  with pytest.raises(SystemExit, match="policy gumbel plans over discrete actions "
                                       r"\(use --policy sampled"):
    cli.main(["train", "gymnax:Pendulum-v1", "--policy", "gumbel"])
  with pytest.raises(SystemExit, match="policy sampled needs a Box action space"):
    cli.main(["train", "gymnax:CartPole-v1", "--policy", "sampled"])


def test_muax_train_gymnax_minatar_trains_conv_nets_in_the_compiled_loop(tmp_path, capsys):
  from muax import cli  # noqa: PLC0415
  code = cli.main(["train", "gymnax:Breakout-MinAtar", "--max-training-steps", "2",
                   "--num-envs", "4", "--num-simulations", "2", "--buffer-warm-up", "8",
                   "--num-trajectory", "4", "--k-steps", "2", "--n-step", "3",
                   "--num-test-episodes", "2", "--logdir", str(tmp_path / "tb"),
                   "--save-dir", str(tmp_path / "models"), "--no-progress",
                   "--replay", "prioritized", "--priority-alpha", "0.5"])
  out = capsys.readouterr().out
  assert code == 0 and "best checkpoint" in out and "random player" not in out, out
  config = cli.config_from_args(dict(env_id="gymnax:Breakout-MinAtar"), given=())
  setup = cli.cli_compiled.compiled_setup(config)
  assert setup["test_max_steps"] == 1000 and setup["target_return"] is None
  assert setup["loop_config"].replay == "uniform"
  given = dict(env_id="gymnax:Breakout-MinAtar", replay="prioritized", priority_alpha=.5)
  loop_config = cli.cli_compiled.compiled_setup(
      cli.config_from_args(given, given=set(given)))["loop_config"]
  assert (loop_config.replay, loop_config.priority_alpha, loop_config.priority_beta,
          loop_config.priority_beta_steps) == ("prioritized", .5, .4, 12500)
  assert "conv" in str(jax.tree_util.tree_structure(setup["model"].params)).lower()
  setup["model"].load(tmp_path / "models" / "compiled_run.npz")  # the run state fits the nets


@pytest.mark.learning
def test_muax_train_gymnax_cartpole_defaults_solve_it(tmp_path, capsys):
  from muax import cli  # noqa: PLC0415
  config = cli.config_from_args(dict(env_id="gymnax:CartPole-v1"), given=())
  setup = cli.cli_compiled.compiled_setup(config)
  # The target and the test's length come from gymnasium's and gymnax's CartPole-v1.
  assert (setup["target_return"], setup["test_max_steps"]) == (475., 500)
  code = cli.main(["train", "gymnax:CartPole-v1", "--logdir", str(tmp_path / "tb"),
                   "--save-dir", str(tmp_path / "models"), "--no-progress"])
  out = capsys.readouterr().out
  best = float(out.split("best test ")[1].split(";")[0])
  assert code == 0 and best >= 475, out  # a random policy scores about 22


@pytest.mark.learning
def test_sampled_muzero_swings_pendulum_up_in_the_compiled_loop():
  from muax import cli  # noqa: PLC0415
  from muax.loop.jitted import CompiledLoop  # noqa: PLC0415
  setup = cli.cli_compiled.compiled_setup(
      cli.config_from_args(dict(env_id="gymnax:Pendulum-v1"), given=()))
  loop = CompiledLoop(setup["model"], setup["env"], config=setup["loop_config"])
  state, tests = loop.init(jax.random.PRNGKey(0)), []
  for chunk in range(20):  # at most 32,000 env steps of `muax train`'s settings
    state, _ = loop.run(state, 100)
    tests.append(float(np.mean(loop.evaluate(state.train.params, jax.random.PRNGKey(chunk),
                                             16, 200))))
    if tests[-1] > -400.:
      break
  assert max(tests) > -400., tests  # random torques score about -1,200
