"""Two-player games: PettingZoo adapters, opponents, alternating returns, self-play."""
import numpy as np
import pytest

import muax
from muax import games
import scripts

pytest.importorskip("pettingzoo")


def _moves(env, actions):
  out = []
  for a in actions:
    out.append(env.step(a))
  return out


def test_pettingzoo_tictactoe_self_play_view():
  env = games.PettingZooEnv("tictactoe_v3")
  assert env.observation_space.shape == (3, 3, 2) and env.action_space.n == 9
  obs, info = env.reset(seed=0)
  assert obs.dtype == np.float32 and not obs.any()
  assert info["to_play"] == 0 and info["action_mask"].tolist() == [1] * 9
  # X: 0, 1, 2 (a line); O: 3, 4.
  steps = _moves(env, [0, 3, 1, 4, 2])
  for i, (obs, reward, terminated, truncated, info) in enumerate(steps[:-1]):
    assert reward == 0. and not terminated and not truncated
    assert info["to_play"] == (i + 1) % 2
  # The observation is from the view of the player to move: after X's 0 and
  # O's 3, X (to move) sees its own piece at 0 in plane 0.
  obs = steps[1][0]
  assert obs[0, 0, 0] == 1 and obs[1, 0, 1] == 1
  assert steps[1][4]["action_mask"].tolist() == [0, 1, 1, 0, 1, 1, 1, 1, 1]
  obs, reward, terminated, truncated, info = steps[-1]
  assert reward == 1. and terminated and not truncated  # the mover's reward
  with pytest.raises(RuntimeError, match="game is over"):
    env.step(5)
  env.reset()
  with pytest.raises(ValueError, match="action 0 is illegal"):
    _moves(env, [0, 0])


def test_pettingzoo_connect_four_and_bad_names():
  env = games.make("pettingzoo:connect_four_v3")
  obs, info = env.reset(seed=1)
  assert obs.shape == (6, 7, 2) and env.action_space.n == 7
  for _ in range(6):  # fill column 0
    obs, reward, terminated, _, info = env.step(0)
  assert info["action_mask"][0] == 0 and not terminated
  with pytest.raises(ValueError, match="no PettingZoo classic game 'chess_v99'"):
    games.make("pettingzoo:chess_v99")


def test_versus_opponent_alternates_seats_and_scores_from_the_agents_view():
  first_legal = lambda obs, mask: int(np.flatnonzero(mask)[0])  # noqa: E731
  env = games.VersusOpponent(games.PettingZooEnv("tictactoe_v3"), first_legal)
  # Seat 0: the agent plays 0, 3, 6 (a line) while the opponent plays 1, 2.
  obs, info = env.reset()
  assert not obs.any()
  rewards = [env.step(a)[1] for a in (0, 3, 6)]
  assert rewards == [0., 0., 1.]
  # Seat 1: the opponent opened at 0; the agent's 4, 8 lose to 0, 1, 2.
  obs, info = env.reset()
  assert obs[0, 0, 1] == 1 and info["action_mask"][0] == 0
  obs, reward, terminated, _, _ = env.step(4)
  assert reward == 0. and not terminated
  obs, reward, terminated, _, _ = env.step(8)
  assert reward == -1. and terminated
  assert env.outcomes == [1., -1.]
  with pytest.raises(ValueError, match="seat must be"):
    games.VersusOpponent(games.PettingZooEnv("tictactoe_v3"), first_legal, seat=2)


def test_random_opponent_plays_only_legal_moves():
  opponent = games.RandomOpponent(0)
  mask = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0])
  assert {opponent(None, mask) for _ in range(50)} == {1, 4}


def test_two_player_tracer_alternates_signs():
  # X wins on the 5th ply: from each mover's view the outcome alternates.
  tracer = muax.NStep(9, 1., two_player=True)
  for t in range(5):
    tracer.add(np.zeros(2), 0, 1. if t == 4 else 0., t == 4, v=0., pi=np.ones(2) / 2)
  rn = [tracer.pop().Rn for _ in range(5)]
  assert rn == [1., -1., 1., -1., 1.]
  # Bootstrapping: Rn_0 = r_0 - g r_1 + g^2 v_2 with every value from its mover's view.
  tracer = muax.NStep(2, 0.5, two_player=True)
  for t, (r, v) in enumerate([(1., 0.), (2., 0.), (0., 3.), (0., 0.)]):
    tracer.add(np.zeros(2), 0, r, False, v=v, pi=np.ones(2) / 2)
  assert tracer.pop().Rn == pytest.approx(1. - 0.5 * 2. + 0.25 * 3.)
  assert muax.PNStep(3, 1., two_player=True).two_player


def test_two_player_model_searches_with_negated_discount_and_saves_it(tmp_path):
  from conftest import make_mlp_model
  model = make_mlp_model(num_actions=9, obs_dim=18, discount=1., two_player=True)
  assert model.two_player and model.search_discount == -1.
  assert make_mlp_model().search_discount == 0.99
  path = model.save(str(tmp_path / "ttt"))
  from muax import checkpoint
  assert checkpoint.load(path)[2]["two_player"] is True
  with pytest.raises(TypeError, match="two_player must be True or False"):
    make_mlp_model(two_player="yes")


def test_fit_refuses_mismatched_two_player_settings(tmp_path):
  from conftest import make_mlp_model
  env = games.PettingZooEnv("tictactoe_v3")
  two = make_mlp_model(num_actions=9, obs_dim=18, two_player=True, init=False)
  with pytest.raises(ValueError, match="tracer is not"):
    muax.fit(two, env=env, test_env=env, tracer=muax.PNStep(9, 1.))
  one = make_mlp_model(num_actions=9, obs_dim=18, init=False)
  with pytest.raises(ValueError, match="opponent is for two-player games"):
    muax.fit(one, env=env, test_env=env, opponent=games.RandomOpponent(0))
  with pytest.raises(ValueError, match="the model is not"):
    muax.fit(one, env=env, test_env=env, tracer=muax.PNStep(9, 1., two_player=True))


@pytest.mark.learning
def test_self_play_learns_to_beat_a_random_player(tmp_path):
  """A short self-play run through fit wins clearly more than it loses against
  a random player (a random player scores about 0: it wins as often as it
  loses over both seats)."""
  tictactoe = scripts.load("examples/tictactoe.py", "tictactoe_example")
  model, result = tictactoe.train(400, seed=0, save_dir=str(tmp_path / "m"),
                                  logdir=str(tmp_path / "tb"), progress=False)
  assert result.episodes == 400 and result.best_path
  wins, draws, losses = tictactoe.score_against(model, games.RandomOpponent(123),
                                                games_per_side=50)
  assert wins + draws + losses == 100
  assert wins - losses >= 30, (wins, draws, losses)


def test_random_openings_start_after_zero_to_max_random_moves():
  env = games.RandomOpenings(games.PettingZooEnv("tictactoe_v3"), max_plies=2, seed=0)
  counts = []
  for _ in range(60):
    obs, info = env.reset()
    pieces = int(obs.sum())
    counts.append(pieces)
    assert info["to_play"] == pieces % 2  # the player to move after the opening
    assert info["action_mask"].sum() == 9 - pieces
  assert set(counts) == {0, 1, 2}
  first = [int(env.reset(seed=5)[0].sum()) for _ in range(2)]
  assert first[0] == first[1]  # a seeded reset repeats its opening
  with pytest.raises(ValueError, match="max_plies must be an integer >= 0"):
    games.RandomOpenings(games.PettingZooEnv("tictactoe_v3"), max_plies=-1)
