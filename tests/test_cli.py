import subprocess
import sys

import pytest

from muax import cli


def test_help_explains_every_option():
  out = subprocess.run([sys.executable, "-m", "muax.cli", "train", "--help"],
                       capture_output=True, text=True, check=True).stdout
  for field in cli.TrainConfig.__dataclass_fields__:
    if field != "env_id":
      assert "--" + field.replace("_", "-") in out
  assert "env_id" in out and "(default: 50)" in out


def test_train_small_budget_prints_summary(tmp_path, capsys):
  code = cli.main(["train", "CartPole-v1", "--max-episodes", "2", "--max-training-steps", "10",
                   "--buffer-warm-up", "2", "--num-simulations", "4", "--test-interval", "1",
                   "--num-test-episodes", "1", "--logdir", str(tmp_path / "tb"),
                   "--save-dir", str(tmp_path / "models"), "--no-progress"])
  out = capsys.readouterr().out
  assert code == 0
  assert "Best greedy test return" in out and str(tmp_path / "models") in out


def test_rejects_continuous_actions():
  with pytest.raises(SystemExit, match="discrete actions"):
    cli.main(["train", "Pendulum-v1", "--no-progress"])  # policy muzero


def test_bad_option_value_fails():
  with pytest.raises(SystemExit):
    cli.main(["train", "CartPole-v1", "--policy", "alphazero"])


def test_num_envs_option_trains_with_a_vector_env(tmp_path, capsys):
  code = cli.main(["train", "CartPole-v1", "--num-envs", "3", "--max-episodes", "3",
                   "--max-training-steps", "6", "--num-update-per-episode", "2",
                   "--buffer-warm-up", "2",
                   "--num-simulations", "4", "--test-interval", "3",
                   "--num-test-episodes", "2", "--logdir", str(tmp_path / "tb"),
                   "--save-dir", str(tmp_path / "models"), "--no-progress"])
  assert code == 0
  out = capsys.readouterr().out
  assert "Trained for 3 episodes" in out and "6 updates" in out


def test_default_num_envs_is_a_positive_int():
  n = cli.default_num_envs()
  assert isinstance(n, int) and n >= 1
  assert cli.TrainConfig(env_id="CartPole-v1").num_envs is None  # None: machine default


def test_resume_option_continues_the_saved_run(tmp_path, capsys):
  common = ["train", "CartPole-v1", "--max-training-steps", "1000",
            "--num-update-per-episode", "2", "--buffer-warm-up", "2", "--num-simulations", "4",
            "--test-interval", "2", "--num-test-episodes", "1", "--logdir",
            str(tmp_path / "tb"), "--save-dir", str(tmp_path / "models"), "--no-progress",
            "--checkpoint-interval", "0", "--num-envs", "1"]
  assert cli.main(common + ["--max-episodes", "2"]) == 0
  capsys.readouterr()
  assert cli.main(common + ["--max-episodes", "4", "--resume"]) == 0
  captured = capsys.readouterr()
  assert "resuming from" in captured.err and "after 2 warm-up and 2 training" in captured.err
  assert "Trained for 4 episodes" in captured.out and "8 updates" in captured.out


def test_trains_a_pettingzoo_game_by_self_play(tmp_path, capsys, monkeypatch):
  pytest.importorskip("pettingzoo")
  import muax
  runs = []
  real_run = muax.train.run

  def spy(model, **kwargs):
    runs.append((model, kwargs))
    return real_run(model, **kwargs)

  monkeypatch.setattr(muax.train, "run", spy)
  code = cli.main(["train", "pettingzoo:tictactoe_v3", "--max-episodes", "3",
                   "--buffer-warm-up", "2", "--num-simulations", "4", "--k-steps", "3",
                   "--test-interval", "3", "--num-test-episodes", "2",
                   "--num-update-per-episode", "2", "--logdir", str(tmp_path / "tb"),
                   "--save-dir", str(tmp_path / "models"), "--no-progress"])
  assert code == 0 and "Best greedy test return" in capsys.readouterr().out
  model, kwargs = runs[0]
  assert model.two_player and kwargs["tracer"].two_player
  assert isinstance(kwargs["opponent"], muax.games.RandomOpponent)


def test_rejects_an_unknown_game():
  pytest.importorskip("pettingzoo")
  with pytest.raises(SystemExit, match="no PettingZoo classic game"):
    cli.main(["train", "pettingzoo:nogame_v0", "--no-progress"])


def test_policy_stochastic_trains_a_stochastic_muzero(tmp_path, capsys, monkeypatch):
  import muax
  from muax import stochastic
  runs = []
  real_run = muax.train.run
  monkeypatch.setattr(muax.train, "run",
                      lambda model, **kw: runs.append(model) or real_run(model, **kw))
  code = cli.main(["train", "CartPole-v1", "--policy", "stochastic", "--num-chance-outcomes",
                   "4", "--max-episodes", "2", "--buffer-warm-up", "2", "--num-simulations",
                   "4", "--k-steps", "3", "--test-interval", "2", "--num-test-episodes", "1",
                   "--num-update-per-episode", "2", "--logdir", str(tmp_path / "tb"),
                   "--save-dir", str(tmp_path / "models"), "--no-progress"])
  assert code == 0 and "Best greedy test return" in capsys.readouterr().out
  assert isinstance(runs[0], stochastic.StochasticMuZero)
  assert runs[0].checkpoint_metadata()["num_chance_outcomes"] == 4


def test_policy_sampled_trains_on_a_box_action_space(tmp_path, capsys, monkeypatch):
  import muax
  from muax import sampled
  runs = []
  real_run = muax.train.run
  monkeypatch.setattr(muax.train, "run",
                      lambda model, **kw: runs.append((model, kw)) or real_run(model, **kw))
  code = cli.main(["train", "Pendulum-v1", "--policy", "sampled", "--num-samples", "4",
                   "--max-episodes", "1", "--max-training-steps", "2", "--buffer-warm-up",
                   "1", "--num-simulations", "2", "--test-interval", "1",
                   "--num-test-episodes", "1", "--logdir", str(tmp_path / "tb"),
                   "--save-dir", str(tmp_path / "models"), "--no-progress"])
  assert code == 0 and "Best greedy test return" in capsys.readouterr().out
  model, kwargs = runs[0]
  assert isinstance(model, sampled.SampledMuZero) and model.num_samples == 4
  # Options not given take the sampled policy's defaults; given ones are kept.
  assert model.support_size == cli.POLICY_DEFAULTS["sampled"]["support_size"]
  assert kwargs["k_steps"] == cli.POLICY_DEFAULTS["sampled"]["k_steps"]
  assert kwargs["num_simulations"] == 2 and kwargs["buffer_warm_up"] == 1


def test_sample_efficiency_options_build_what_they_name(tmp_path, monkeypatch):
  import muax
  seen = {}

  def fake_run(model, **kwargs):
    seen.update(kwargs, model=model)
    raise SystemExit(0)

  monkeypatch.setattr(muax.train, "run", fake_run)
  with pytest.raises(SystemExit):
    cli.main(["train", "CartPole-v1", "--replay", "prioritized", "--priority-alpha", "0.7",
              "--reanalyze", "0.25", "--reanalyze-simulations", "7",
              "--target-update-interval", "33", "--value-prefix", "--consistency", "1.5",
              "--no-progress", "--save-dir", str(tmp_path)])
  buffer, reanalyze, model = seen["buffer"], seen["reanalyze"], seen["model"]
  assert isinstance(buffer, muax.PrioritizedReplayBuffer) and buffer.alpha == 0.7
  assert (reanalyze.fraction, reanalyze.num_simulations,
          reanalyze.target_update_interval) == (0.25, 7, 33)
  assert isinstance(model, muax.value_prefix.ValuePrefixMuZero)
  seen.clear()
  with pytest.raises(SystemExit):
    cli.main(["train", "CartPole-v1", "--consistency", "2", "--no-progress"])
  assert seen["model"]._loss_fn.weights["consistency_weight"] == 2.
  assert isinstance(seen["buffer"], muax.TrajectoryReplayBuffer) and seen["reanalyze"] is None


@pytest.mark.parametrize("argv, message", [
    (["--replay", "prioritized", "--priority-alpha", "-1"], "alpha"),
    (["--reanalyze", "1.5"], "fraction"),
    (["--consistency", "-2"], "consistency_weight"),
    (["--policy", "stochastic", "--reanalyze", "0.5"], "work with policy muzero or gumbel"),
])
def test_sample_efficiency_options_reject_bad_values(argv, message):
  with pytest.raises(SystemExit, match=message):
    cli.main(["train", "CartPole-v1", "--no-progress"] + argv)


def test_train_with_prioritized_replay_and_reanalyze(tmp_path, capsys):
  code = cli.main(["train", "CartPole-v1", "--max-episodes", "2", "--max-training-steps", "6",
                   "--num-update-per-episode", "3", "--buffer-warm-up", "2",
                   "--num-simulations", "4", "--test-interval", "2", "--num-test-episodes",
                   "1", "--replay", "prioritized", "--reanalyze", "0.5", "--value-prefix",
                   "--logdir", str(tmp_path / "tb"), "--save-dir", str(tmp_path / "models"),
                   "--no-progress"])
  assert code == 0 and "6 updates" in capsys.readouterr().out


def test_a_run_folder_in_use_or_of_another_run_is_a_message_not_a_traceback(tmp_path):
  from muax import run_state
  common = ["train", "CartPole-v1", "--max-episodes", "1", "--buffer-warm-up", "1",
            "--num-simulations", "2", "--num-test-episodes", "1", "--no-progress",
            "--logdir", str(tmp_path / "tb"), "--save-dir", str(tmp_path / "models"),
            "--num-envs", "1"]
  with run_state.locked(tmp_path / "models"):
    with pytest.raises(SystemExit, match="muax train: .* is in use by another muax run"):
      cli.main(common)
  assert cli.main(common) == 0
  with pytest.raises(SystemExit, match="muax train: cannot resume: .*policy='muzero', this "
                                       "call has policy='gumbel'"):
    cli.main(common + ["--resume", "--policy", "gumbel"])
