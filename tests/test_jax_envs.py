"""pgx games in the compiled loop: the adapter's views, masks and a self-play run."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import make_mlp_model
import muax
from muax import jax_envs
from muax import nn
from muax.loop.jitted import CompiledConfig
from muax.loop.jitted import CompiledLoop

pytest.importorskip("pgx")


def test_rewards_are_the_movers_and_turns_alternate():
  env = jax_envs.make("pgx:tic_tac_toe")
  assert (env.num_actions, env.observation_shape) == (9, (3, 3, 2))
  obs, state = env.reset_env(jax.random.PRNGKey(0))
  assert obs.dtype == jnp.float32 and int(env.current_player(state)) in (0, 1)
  first = int(env.current_player(state))
  # X plays 0, 1, 2 (a row) while O plays 3, 4: X's third move wins.
  for i, action in enumerate([0, 3, 1, 4, 2]):
    mover = int(env.current_player(state))
    assert mover == (first if i % 2 == 0 else 1 - first)
    assert bool(env.legal_actions(state)[action])
    obs, state, reward, done, _ = env.step_env(jax.random.PRNGKey(i), state, jnp.int32(action))
    assert not bool(env.legal_actions(state)[action]) or bool(done)
    assert bool(done) == (i == 4)
  assert float(reward) == 1.  # from the view of the player who moved and won
  assert not bool(env.time_limit(state))


def test_random_openings_start_after_zero_to_n_legal_moves():
  env = jax_envs.make("pgx:tic_tac_toe", random_openings=2)
  obs, state = jax.vmap(env.reset_env)(jax.random.split(jax.random.PRNGKey(0), 300))
  pieces = np.asarray(obs.sum(axis=(1, 2, 3)))
  assert set(pieces.tolist()) == {0., 1., 2.}
  np.testing.assert_array_equal(np.asarray(state.legal_action_mask).sum(-1), 9 - pieces)
  assert not np.asarray(state.terminated).any()
  plain, _ = jax_envs.make("pgx:tic_tac_toe").reset_env(jax.random.PRNGKey(0))
  assert float(plain.sum()) == 0.
  with pytest.raises(ValueError, match="random_openings must be >= 0"):
    jax_envs.make("pgx:tic_tac_toe", random_openings=-1)


def test_unknown_names_are_refused():
  with pytest.raises(ValueError, match="use 'gymnax:<id>' or 'pgx:<game>'"):
    jax_envs.make("tic_tac_toe")
  with pytest.raises(ValueError, match="pgx has no game 'chess960'"):
    jax_envs.make("pgx:chess960")


def tictactoe_model():
  size = 21
  model = muax.MuZero(
      nn._init_representation_func(nn.Representation, 32, hidden=(64,)),
      nn._init_prediction_func(nn.Prediction, 9, size, hidden=(64,)),
      nn._init_dynamic_func(nn.Dynamic, 32, 9, size, hidden=(64,)),
      policy="gumbel", discount=1., two_player=True,
      optimizer=muax.model.optimizer(init_value=0., peak_value=3e-3, end_value=3e-4,
                                     warmup_steps=200, transition_steps=3000))
  model.init(jax.random.PRNGKey(0), np.zeros((1, 3, 3, 2), np.float32))
  return model


def margins(loop, params, key):
  """Wins minus losses per game against a random player, moving first and second."""
  scores = np.asarray(loop.evaluate(params, key, 200, 9))
  return scores[0::2].mean(), scores[1::2].mean()


@pytest.mark.learning
def test_self_play_in_the_compiled_loop_beats_a_random_player_from_both_seats():
  model = tictactoe_model()
  loop = CompiledLoop(model, jax_envs.make("pgx:tic_tac_toe"), config=CompiledConfig(
      num_envs=64, num_simulations=16, k_steps=5, n=9, discount=1., batch_size=128,
      updates_per_iteration=4, capacity=400, learning_starts=20))
  # Untrained, it plays about as a random player does: ahead as the first
  # mover, behind as the second.
  first, second = margins(loop, model.params, jax.random.PRNGKey(100))
  assert second < 0.1, (first, second)
  state = loop.init(jax.random.PRNGKey(1))
  for chunk in range(8):  # at most 51,200 moves
    state, _ = loop.run(state, 100)
    first, second = margins(loop, state.train.params, jax.random.PRNGKey(chunk))
    if min(first, second) >= 0.4:
      break
  assert min(first, second) >= 0.4, (first, second)


def test_muax_train_pgx_runs_the_compiled_loop_with_the_games_defaults(tmp_path, capsys):
  from muax import cli  # noqa: PLC0415
  code = cli.main(["train", "pgx:tic_tac_toe", "--max-training-steps", "40",
                   "--num-envs", "4", "--num-simulations", "4", "--buffer-warm-up", "8",
                   "--logdir", str(tmp_path / "tb"), "--save-dir", str(tmp_path / "models"),
                   "--no-progress"])
  out = capsys.readouterr().out
  assert code == 0 and "80 env steps" in out and "best checkpoint" in out, out
  config = cli.config_from_args(dict(env_id="pgx:tic_tac_toe", policy="muzero"),
                                given={"policy"})
  assert (config.policy, config.support_size, config.discount) == ("muzero", 2, 1.)
  model = cli.build_model(config, 9, two_player=True)
  model.load(tmp_path / "models" / "compiled_run.npz")  # the run state is a checkpoint
  assert (tmp_path / "models" / "best").is_dir()


def test_a_one_player_game_is_played_by_the_agent_alone():
  # pgx's 2048 has a current player (always 0): every test game is the
  # agent's own, its merges scored positively (no random opponent, no sign flip).
  model = make_mlp_model(policy="gumbel", num_actions=4, init=False, discount=.99)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 4, 4, 31), np.float32))
  env = jax_envs.make("pgx:2048")
  assert (env.num_players, env.num_actions) == (1, 4)
  loop = CompiledLoop(model, env, config=CompiledConfig(num_envs=4, num_simulations=4))
  returns = np.asarray(loop.evaluate(model.params, jax.random.PRNGKey(0), 4, 40))
  assert (returns > 0).all(), returns


def test_stochastic_muzero_learns_2048s_chance_in_the_compiled_loop():
  # The new tile after each move is the environment's chance: the encoder
  # learns codes for it from consecutive observations in the device replay.
  from muax import stochastic  # noqa: PLC0415
  model = stochastic.build_model(4, num_chance_outcomes=8, embedding_dim=16, hidden=(32,),
                                 support_size=10)
  model.init(jax.random.PRNGKey(0), np.zeros((1, 4, 4, 31), np.float32))
  loop = CompiledLoop(model, jax_envs.make("pgx:2048"), config=CompiledConfig(
      num_envs=4, num_simulations=4, k_steps=3, n=5, batch_size=16, learning_starts=8,
      updates_per_iteration=2, discount=.99))
  state, metrics = loop.run(loop.init(jax.random.PRNGKey(1)), 100)
  loss = np.asarray(metrics["loss"])
  assert np.isnan(loss[:7]).all() and np.isfinite(loss[7:]).all()
  assert int(state.train.count) == 2 * (100 - 7)
  # ~10.9 at the first updates; ~6.5 after 186 (a loss that does not train stays near 11)
  assert loss[-10:].mean() < 0.8 * loss[7:12].mean(), (loss[7:12], loss[-10:])
  assert (np.asarray(loop.evaluate(state.train.params, jax.random.PRNGKey(2), 4, 30)) > 0).all()


def test_muax_train_refuses_a_policy_the_game_cannot_take(capsys):
  from muax import cli  # noqa: PLC0415
  with pytest.raises(SystemExit, match="two-player game; policy stochastic plans for one "
                                       "player \\(use muzero or gumbel\\)"):
    cli.main(["train", "pgx:tic_tac_toe", "--policy", "stochastic"])
  with pytest.raises(SystemExit, match=r"policy sampled needs a Box action space, got "
                                       r"Discrete\(4\)"):
    cli.main(["train", "pgx:2048", "--policy", "sampled"])


@pytest.mark.parametrize("game", ["tic_tac_toe", "connect_four"])
def test_a_symmetric_game_played_with_moved_moves_is_the_moved_board(game):
  env = jax_envs.make(f"pgx:{game}")
  step = jax.jit(env.env.step)
  assert len(env.symmetries) == (8 if game == "tic_tac_toe" else 2)
  rng = np.random.default_rng(0)
  for transform, permutation in env.symmetries:
    for _ in range(3):
      state = moved = env.env.init(jax.random.PRNGKey(0))
      while not bool(state.terminated):
        action = rng.choice(np.flatnonzero(np.asarray(state.legal_action_mask)))
        np.testing.assert_array_equal(np.asarray(moved.legal_action_mask)[permutation],
                                      np.asarray(state.legal_action_mask))
        state, moved = step(state, action), step(moved, permutation[action])
        np.testing.assert_array_equal(np.asarray(transform(state.observation)),
                                      np.asarray(moved.observation))
        np.testing.assert_array_equal(np.asarray(state.rewards), np.asarray(moved.rewards))
      assert bool(moved.terminated)


def test_the_loop_learns_from_the_boards_symmetries_unless_told_not_to():
  import dataclasses  # noqa: PLC0415
  config = CompiledConfig(num_envs=4, num_simulations=4, k_steps=3, n=3, discount=1.,
                          batch_size=8, updates_per_iteration=1, capacity=64, learning_starts=8)
  params = {}
  for flag in (True, False):
    loop = CompiledLoop(tictactoe_model(), jax_envs.make("pgx:tic_tac_toe"),
                        config=dataclasses.replace(config, symmetries=flag))
    params[flag] = jax.device_get(loop.run(loop.init(jax.random.PRNGKey(0)), 12)[0].train.params)
  # the same windows are sampled either way; only the boards they are learnt in differ
  differs = jax.tree_util.tree_map(lambda a, b: not np.array_equal(a, b), params[True],
                                   params[False])
  assert all(jax.tree_util.tree_leaves(differs))
