"""fit_compiled: tests, logs, checkpoints, run states, resume and Ctrl+C around the chunks."""
import os
import signal
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import make_mlp_model
from jax_cartpole import CartPole
from muax import run_lock
from muax.loop.compiled_fit import RUN_FILE
from muax.loop.compiled_fit import fit_compiled
from muax.loop.errors import ResumeMismatch
from muax.loop.errors import TrainingInterrupted
from muax.loop.jitted import CompiledConfig
from tb_events import read_scalars

CONFIG = CompiledConfig(num_envs=4, num_simulations=4, k_steps=3, n=3, batch_size=16,
                        capacity=64, learning_starts=8)
RUN = dict(config=CONFIG, chunk=20, test_episodes=2, test_max_steps=60, progress_bar=False)


def params_of(model):
  return jax.tree_util.tree_leaves(jax.device_get(model.params))


def assert_same(a, b):
  for x, y in zip(params_of(a), params_of(b), strict=True):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """Four chunks in one go: what the interrupted runs below must reproduce."""
  folder = tmp_path_factory.mktemp("straight")
  model = make_mlp_model(policy="gumbel")
  best = fit_compiled(model, CartPole(), max_env_steps=320, model_save_path=folder / "models",
                      tensorboard_dir=str(folder / "tb"), **RUN)
  return model, folder, best


def test_a_run_logs_keeps_the_best_checkpoint_and_a_loadable_run_state(straight):
  model, folder, best = straight
  assert int(model.train_state.count) > 0
  scalars = read_scalars(str(folder / "tb"))
  assert [step for step, _ in scalars["train/test_return"]] == [80, 160, 240, 320]
  assert np.isfinite([v for _, v in scalars["train/loss"]]).all()
  returns = [v for _, v in scalars["train/test_return"]]
  loaded = make_mlp_model(policy="gumbel").load(best)  # the best test's parameters
  assert best.endswith("best/model.npz") and max(returns) > 0
  # The run state is a model checkpoint too, at the run's last training state.
  last = make_mlp_model(policy="gumbel").load(folder / "models" / RUN_FILE)
  assert_same(last, model)
  assert loaded.params is not None


def test_resume_continues_bit_for_bit(straight, tmp_path):
  model = make_mlp_model(policy="gumbel")
  fit_compiled(model, CartPole(), max_env_steps=160, model_save_path=tmp_path, **RUN)
  again, chunks = make_mlp_model(policy="gumbel"), []
  fit_compiled(again, CartPole(), max_env_steps=320, model_save_path=tmp_path, resume=True,
               on_chunk=chunks.append, **RUN)
  # It went on from the saved state (chunks 3 and 4), and ends where one run ends.
  assert [(c["chunk"], c["env_steps"]) for c in chunks] == [(3, 240), (4, 320)]
  assert_same(again, straight[0])


def test_ctrl_c_stops_after_the_chunk_with_the_run_saved(straight, tmp_path):
  def interrupt(summary):
    if summary["chunk"] == 2:
      os.kill(os.getpid(), signal.SIGINT)

  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    with pytest.raises(TrainingInterrupted) as stopped:
      fit_compiled(make_mlp_model(policy="gumbel"), CartPole(), max_env_steps=320,
                   model_save_path=tmp_path, on_chunk=interrupt, **RUN)
  finally:
    signal.signal(signal.SIGINT, previous)
  assert stopped.value.code == 130 and stopped.value.path.endswith(RUN_FILE)
  resumed, chunks = make_mlp_model(policy="gumbel"), []
  fit_compiled(resumed, CartPole(), max_env_steps=320, model_save_path=tmp_path,
               resume=True, on_chunk=chunks.append, **RUN)
  assert [c["chunk"] for c in chunks] == [3, 4]
  assert_same(resumed, straight[0])


def test_resuming_another_loop_is_refused(straight):
  _, folder, _ = straight
  other = dict(RUN, config=CompiledConfig(**{**CONFIG.__dict__, "num_envs": 3}))
  with pytest.raises(ResumeMismatch, match="environment count or capacity"):
    fit_compiled(make_mlp_model(policy="gumbel"), CartPole(), max_env_steps=400,
                 model_save_path=folder / "models", resume=True, **other)


def test_a_new_run_keeps_the_earlier_run_aside(tmp_path):
  first = fit_compiled(make_mlp_model(policy="gumbel"), CartPole(), max_env_steps=80,
                       model_save_path=tmp_path, **RUN)
  before = {p.name: p.read_bytes() for p in [tmp_path / RUN_FILE, Path(first)]}
  (tmp_path / "best" / ".model.npz.x1_2.tmp").write_bytes(b"cut short")  # a crashed write
  fit_compiled(make_mlp_model(policy="gumbel"), CartPole(), max_env_steps=80,
               model_save_path=tmp_path, random_seed=1, **RUN)
  kept_run = list(tmp_path.glob("compiled_run-*.npz"))
  kept_best = [p / "model.npz" for p in tmp_path.glob("best-*")]
  assert len(kept_run) == 1 and len(kept_best) == 1
  assert [p.name for p in kept_best[0].parent.iterdir()] == ["model.npz"]  # no leftover
  assert kept_run[0].read_bytes() == before[RUN_FILE]
  assert kept_best[0].read_bytes() == before["model.npz"]
  assert (tmp_path / RUN_FILE).read_bytes() != before[RUN_FILE]  # the new run's own


def test_one_run_at_a_time_in_a_folder(tmp_path):
  with run_lock.locked(tmp_path):
    with pytest.raises(run_lock.RunFolderInUse):
      fit_compiled(make_mlp_model(policy="gumbel"), CartPole(), max_env_steps=80,
                   model_save_path=tmp_path, **RUN)
  assert not (tmp_path / RUN_FILE).exists()


def test_a_moved_run_folder_resumes(tmp_path):
  fit_compiled(make_mlp_model(policy="gumbel"), CartPole(), max_env_steps=80,
               model_save_path=tmp_path / "a", **RUN)
  os.replace(tmp_path / "a", tmp_path / "b")
  best = fit_compiled(make_mlp_model(policy="gumbel"), CartPole(), max_env_steps=160,
                      model_save_path=tmp_path / "b", resume=True, **RUN)
  assert Path(best).is_relative_to(tmp_path / "b") and Path(best).exists()


def test_chunks_that_learn_nothing_or_end_no_episode_log_no_nan(tmp_path):
  # chunks of 5 iterations x 4 envs; learning starts at iteration 8; 50 steps round up to 60
  fit_compiled(make_mlp_model(policy="gumbel"), CartPole(), max_env_steps=50,
               model_save_path=tmp_path / "models", tensorboard_dir=str(tmp_path / "tb"),
               **dict(RUN, chunk=5))
  scalars = read_scalars(str(tmp_path / "tb"))
  assert [step for step, _ in scalars["train/updates"]] == [20, 40, 60]
  assert [step for step, _ in scalars["train/loss"]] == [40, 60]  # nothing learnt by step 20
  assert 20 not in [step for step, _ in scalars["train/episode_return"]]  # none ended yet
  assert all(np.isfinite([v for _, v in values]).all() for values in scalars.values())
