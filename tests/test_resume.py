"""Runs that survive: resume, SIGKILL, SIGINT, non-finite losses, failing envs."""
import os
import pickle
import random
import signal
import subprocess
import sys
import time

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muax
from muax import acting
from muax import checkpoint
from muax import run_state
from conftest import make_mlp_model
from tb_events import read_events, read_scalars

HERE = os.path.dirname(__file__)
FAULT_RUN = os.path.join(HERE, "fault_run.py")

TINY = dict(test_interval=3, num_test_episodes=2, max_training_steps=10_000,
            num_simulations=4, k_steps=3, buffer_warm_up=2, num_trajectory=4,
            sample_per_trajectory=2, num_update_per_episode=3, progress=False,
            random_seed=5, checkpoint_interval=0)


def _fit(tmp_path, folder, **kwargs):
  model = make_mlp_model(init=False)
  settings = {**TINY, "buffer": muax.TrajectoryReplayBuffer(30, random_seed=5), **kwargs}
  result = muax.train.run(model, env_id="CartPole-v1", name=folder,
                          tensorboard_dir=str(tmp_path / "tb"),
                          model_save_path=str(tmp_path / folder), **settings)
  return model, result


def _assert_same_params(a, b):
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _state_files(save_dir):
  folder = os.path.join(save_dir, run_state.RUN_DIR)
  return sorted(f for f in os.listdir(folder) if f.endswith(".npz")) if os.path.isdir(
      folder) else []


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
  whole, whole_result = _fit(tmp_path, "whole", max_episodes=6)
  _fit(tmp_path, "split", max_episodes=3)
  resumed, resumed_result = _fit(tmp_path, "split", max_episodes=6, resume=True)
  _assert_same_params(whole.params, resumed.params)
  _assert_same_params(whole.optimizer_state, resumed.optimizer_state)
  assert resumed_result.training_steps == whole_result.training_steps == 6 * 3
  assert resumed_result.env_steps == whole_result.env_steps
  assert [t.test_return for t in resumed_result.tests] == [
      t.test_return for t in whole_result.tests]
  assert resumed_result.episodes == 6
  assert os.path.basename(os.path.dirname(resumed_result.best_path)) == os.path.basename(
      os.path.dirname(whole_result.best_path))
  # TensorBoard continues at the next episode; later steps of the old file are purged.
  whole_tb = read_scalars(whole_result.logdir)["train/episode_return"]
  split_tb = read_scalars(resumed_result.logdir)["train/episode_return"]
  assert split_tb == whole_tb and [step for step, _ in split_tb] == list(range(1, 7))
  starts = [e.step for e in read_events(resumed_result.logdir)
            if e.HasField("session_log") and e.session_log.status == e.session_log.START]
  assert starts == [4]


def test_prioritized_replay_resumes_exactly(tmp_path):
  per = lambda: muax.PrioritizedReplayBuffer(30, random_seed=5)  # noqa: E731
  # Split where a test falls anyway (test_interval=3): the extra test at the
  # end of a shorter run would draw keys the whole run does not.
  whole, whole_result = _fit(tmp_path, "whole", max_episodes=6, buffer=per())
  _fit(tmp_path, "split", max_episodes=3, buffer=per())
  buffer = per()
  resumed, resumed_result = _fit(tmp_path, "split", max_episodes=6, resume=True,
                                 buffer=buffer)
  _assert_same_params(whole.params, resumed.params)
  assert resumed_result.env_steps == whole_result.env_steps
  assert buffer.batches_sampled == 6 * 3 and (buffer.priorities() != 1.).any()


def test_resume_of_a_finished_run_returns_its_result_without_training(tmp_path):
  _, first = _fit(tmp_path, "done", max_episodes=3)
  model, again = _fit(tmp_path, "done", max_episodes=3, resume=True)
  assert again.training_steps == first.training_steps
  assert again.best_path == first.best_path and again.tests == first.tests
  _assert_same_params(model.params, muax.MuZero.load(make_mlp_model(init=False),
                                                     first.best_path).params)


def test_resume_without_a_saved_run_starts_fresh(tmp_path, capsys):
  _, result = _fit(tmp_path, "new", max_episodes=2, resume=True)
  assert result.episodes == 2
  assert "no run state" in capsys.readouterr().err


def test_only_the_newest_run_states_and_best_checkpoints_are_kept(tmp_path):
  _, result = _fit(tmp_path, "keep", max_episodes=7, test_interval=1, keep_checkpoints=2)
  files = _state_files(tmp_path / "keep")
  assert files == ["state_0000008.npz", "state_0000009.npz"]  # 2 warm-up + 7 episodes
  best_dirs = [d for d in os.listdir(tmp_path / "keep") if d.startswith("epoch_")]
  assert 1 <= len(best_dirs) <= 2
  assert os.path.exists(checkpoint.resolve(result.best_path))


def test_unreadable_newest_state_falls_back_to_the_previous_one(tmp_path, capsys):
  _fit(tmp_path, "fallback", max_episodes=3)
  folder = tmp_path / "fallback" / run_state.RUN_DIR
  newest = folder / _state_files(tmp_path / "fallback")[-1]
  data = newest.read_bytes()
  newest.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
  _, result = _fit(tmp_path, "fallback", max_episodes=3, resume=True, keep_checkpoints=1)
  assert "skipping unreadable run state" in capsys.readouterr().err
  assert result.episodes == 3  # the lost episode was played again
  # The bad file is set aside, never counted among the kept states.
  assert (folder / (newest.name + ".bad")).exists()
  assert _state_files(tmp_path / "fallback") == [newest.name]
  checkpoint.read(newest, run_arrays=True)


class _Evil:
  def __reduce__(self):
    return (os.system, ("touch hacked",))


def test_a_pickled_run_state_is_never_unpickled(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  _fit(tmp_path, "evil", max_episodes=2)
  planted = tmp_path / "evil" / run_state.RUN_DIR / "state_0009999.npz"
  with open(planted, "wb") as f:
    pickle.dump({"params": _Evil()}, f)
  _, result = _fit(tmp_path, "evil", max_episodes=3, resume=True)
  assert not (tmp_path / "hacked").exists()
  assert "skipping unreadable run state" in capsys.readouterr().err
  assert result.episodes == 3


def test_resume_refuses_a_run_of_another_environment(tmp_path):
  _fit(tmp_path, "cart", max_episodes=2)
  model = make_mlp_model(init=False, obs_dim=8, num_actions=4)
  with pytest.raises(ValueError, match="trained on 'CartPole-v1'"):
    muax.fit(model, env_id="LunarLander-v3", model_save_path=str(tmp_path / "cart"),
             tensorboard_dir=str(tmp_path / "tb"), resume=True, **dict(TINY, max_episodes=1))


@pytest.mark.parametrize("kwargs, match", [
    (dict(checkpoint_interval=-1), "checkpoint_interval"),
    (dict(checkpoint_interval=float("nan")), "checkpoint_interval"),
    (dict(keep_checkpoints=0), "keep_checkpoints"),
    (dict(max_consecutive_skipped=0), "max_consecutive_skipped"),
    (dict(target_return=float("nan")), "target_return"),
    (dict(resume=3), "resume"),
])
def test_bad_run_settings_are_refused(tmp_path, kwargs, match):
  with pytest.raises((ValueError, TypeError), match=match):
    _fit(tmp_path, "bad", max_episodes=1, **kwargs)


def _nan_loss(model, params, batch):
  value, metrics = muax.loss.default_loss_fn(model, params, batch)
  return value * jnp.nan, metrics


def test_non_finite_updates_stop_fit_and_keep_the_last_good_state(tmp_path):
  model = make_mlp_model(init=False, loss_fn=_nan_loss)
  with pytest.raises(muax.train.TrainingDiverged, match="max_consecutive_skipped=7"):
    muax.train.run(model, env_id="CartPole-v1", name="nan",
                   tensorboard_dir=str(tmp_path / "tb"),
                   model_save_path=str(tmp_path / "nan"),
                   **dict(TINY, max_episodes=10, max_consecutive_skipped=7))
  files = _state_files(tmp_path / "nan")
  assert files, "the states before the failure are kept"
  params, _, _ = checkpoint.load(tmp_path / "nan" / run_state.RUN_DIR / files[-1])
  assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(params))
  # 3 updates per episode: the third episode brings the count to 9 >= 7.
  assert files[-1] == "state_0000004.npz"


class _FlakyCartPole(gym.Wrapper):
  """Raises in the middle of its `fail_episode`-th episode."""

  def __init__(self, fail_episode):
    super().__init__(gym.make("CartPole-v1"))
    self.fail_episode, self.episodes, self.steps = fail_episode, 0, 0

  def reset(self, **kwargs):
    self.episodes += 1
    self.steps = 0
    return self.env.reset(**kwargs)

  def step(self, action):
    self.steps += 1
    if self.episodes == self.fail_episode and self.steps == 5:
      raise RuntimeError("simulator crashed")
    return self.env.step(action)


def test_an_environment_that_raises_leaves_a_resumable_run(tmp_path):
  common = dict(TINY, max_episodes=5, checkpoint_interval=1e9)
  with pytest.raises(RuntimeError, match="simulator crashed") as info:
    muax.fit(make_mlp_model(init=False), env=_FlakyCartPole(5),
             test_env=gym.make("CartPole-v1"), name="flaky",
             tensorboard_dir=str(tmp_path / "tb"),
             model_save_path=str(tmp_path / "flaky"), **common)
  assert any("resume=True" in note for note in info.value.__notes__)
  # The first reset initialised the model: 2 warm-up episodes and 1 training
  # episode were complete when the 5th reset's episode failed.
  assert _state_files(tmp_path / "flaky") == ["state_0000003.npz"]
  result = muax.train.run(make_mlp_model(init=False), env=gym.make("CartPole-v1"),
                          test_env=gym.make("CartPole-v1"), name="flaky",
                          tensorboard_dir=str(tmp_path / "tb"),
                          model_save_path=str(tmp_path / "flaky"), resume=True, **common)
  assert result.episodes == 5 and result.training_steps == 5 * 3


def test_non_finite_reward_from_the_environment_is_a_clear_error(tmp_path):
  class NanReward(gym.Wrapper):
    def step(self, action):
      obs, r, terminated, truncated, info = self.env.step(action)
      return obs, float("nan"), terminated, truncated, info

  with pytest.raises(ValueError, match="non-finite reward"):
    muax.fit(make_mlp_model(init=False), env=NanReward(gym.make("CartPole-v1")),
             test_env=gym.make("CartPole-v1"), tensorboard_dir=str(tmp_path / "tb"),
             model_save_path=str(tmp_path / "m"), **dict(TINY, max_episodes=1))


# -- subprocess faults ------------------------------------------------------


def _start(save_dir, *extra, new_session=False):
  # The run starts as a terminal's foreground job would, with SIGINT at its
  # default even when these tests run in a background job (which ignores it).
  return subprocess.Popen([sys.executable, FAULT_RUN, str(save_dir), *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=new_session, preexec_fn=_default_sigint)


def _default_sigint():
  signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_states(proc, save_dir, count, timeout=120.):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      return False
    if len(_state_files(save_dir)) >= count or (
        _state_files(save_dir) and int(_state_files(save_dir)[-1][6:13]) >= count):
      return True
    time.sleep(0.02)
  raise AssertionError("the run wrote no run state in time")


def _newest_state(save_dir):
  files = _state_files(save_dir)
  return int(files[-1][6:13]) if files else 0


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  """The uninterrupted run's final parameters."""
  folder = tmp_path_factory.mktemp("reference")
  out = subprocess.run([sys.executable, FAULT_RUN, str(folder)], capture_output=True,
                       text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  params, opt_leaves, _ = checkpoint.load(folder / "final")
  return params, opt_leaves


def test_sigkill_at_random_moments_then_resume_loses_nothing(tmp_path, reference_run):
  rng = random.Random(7)
  save_dir = tmp_path / "run"
  models = save_dir / "models"
  saved = 0
  for trial in range(3):
    proc = _start(save_dir, *(["--resume"] if trial else []))
    target = saved + rng.randint(2, 6)  # states counted in collected episodes
    if _wait_for_states(proc, models, target):
      time.sleep(rng.uniform(0., 0.3))
      proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    # Whatever was on disk is complete and readable, and no progress was lost.
    files = _state_files(models)
    assert files
    for name in files:
      checkpoint.read(models / run_state.RUN_DIR / name, run_arrays=True)
    assert _newest_state(models) >= saved
    saved = _newest_state(models)
  out = subprocess.run([sys.executable, FAULT_RUN, str(save_dir), "--resume"],
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0 and "DONE" in out.stdout, out.stderr[-3000:]
  assert "resuming from" in out.stderr
  params, opt_leaves, _ = checkpoint.load(save_dir / "final")
  _assert_same_params(params, reference_run[0])
  _assert_same_params(opt_leaves, reference_run[1])


def test_sigint_saves_and_exits_cleanly_then_resume_finishes(tmp_path, reference_run):
  save_dir = tmp_path / "run"
  proc = _start(save_dir)
  assert _wait_for_states(proc, save_dir / "models", 6)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode in (0, 130), err[-3000:]
  assert "resume=True" in err and "Traceback" not in err
  stopped_at = _newest_state(save_dir / "models")
  assert stopped_at >= 6
  out = subprocess.run([sys.executable, FAULT_RUN, str(save_dir), "--resume"],
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0 and "DONE" in out.stdout, out.stderr[-3000:]
  params, _, _ = checkpoint.load(save_dir / "final")
  _assert_same_params(params, reference_run[0])


def test_sigterm_saves_the_run_and_exits_with_143(tmp_path):
  save_dir = tmp_path / "run"
  proc = _start(save_dir)
  assert _wait_for_states(proc, save_dir / "models", 5)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 143, err[-3000:]
  assert "SIGTERM received" in err and "resume=True" in err
  assert _newest_state(save_dir / "models") >= 5


def test_vectorized_run_resumes_and_finishes(tmp_path):
  _, first = _fit(tmp_path, "vec", max_episodes=3, num_envs=2, vectorization="sync")
  model, resumed = _fit(tmp_path, "vec", max_episodes=6, num_envs=2, vectorization="sync",
                        resume=True)
  assert resumed.episodes == 6 and resumed.training_steps == 6 * 3
  assert resumed.env_steps > first.env_steps
  assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(model.params))


def test_a_new_run_moves_an_earlier_runs_states_aside(tmp_path, capsys):
  _fit(tmp_path, "same", max_episodes=4)
  earlier = _state_files(tmp_path / "same")
  _, second = _fit(tmp_path, "same", max_episodes=2)
  assert "were moved to" in capsys.readouterr().err
  archived = [d for d in os.listdir(tmp_path / "same") if d.startswith("run-")]
  assert len(archived) == 1
  assert sorted(os.listdir(tmp_path / "same" / archived[0])) == earlier
  _, resumed = _fit(tmp_path, "same", max_episodes=2, resume=True)
  assert resumed.training_steps == second.training_steps  # the newer run, finished


def test_resume_from_a_given_state_file_or_folder(tmp_path):
  _fit(tmp_path, "given", max_episodes=3)
  file = tmp_path / "given" / run_state.RUN_DIR / _state_files(tmp_path / "given")[0]
  model = make_mlp_model(init=False)
  result = muax.train.run(model, env_id="CartPole-v1", tensorboard_dir=str(tmp_path / "tb"),
                          resume=str(file), buffer=muax.TrajectoryReplayBuffer(30),
                          **dict(TINY, max_episodes=3))
  assert result.save_dir == str(tmp_path / "given") and result.episodes == 3
  with pytest.raises(ValueError, match="no muax run state there"):
    muax.fit(make_mlp_model(init=False), env_id="CartPole-v1", resume=str(tmp_path / "tb"),
             tensorboard_dir=str(tmp_path / "tb"), **dict(TINY, max_episodes=1))


def test_ctrl_c_to_the_process_group_stops_async_workers_cleanly(tmp_path):
  # A terminal's Ctrl+C reaches the environment worker processes too; they
  # must leave the stop to fit, which saves and closes them.
  save_dir = tmp_path / "run"
  proc = _start(save_dir, "--num-envs", "2", "--vectorization", "async",
                "--episodes", "400", new_session=True)
  assert _wait_for_states(proc, save_dir / "models", 4)
  os.killpg(proc.pid, signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-3000:]
  assert "Traceback" not in err and "resume=True" in err


# -- the run folder: nothing saved is lost -------------------------------------


def _files(folder):
  """`{relative path: (inode, bytes)}` of every file under `folder`."""
  found = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      found[os.path.relpath(path, folder)] = (os.stat(path).st_ino,
                                              open(path, "rb").read())
  return found


def test_a_new_run_in_a_finished_runs_folder_overwrites_nothing(tmp_path, capsys):
  # The same settings and seed: the second run reaches the same episodes and
  # test returns, so it would choose the same best-checkpoint names.
  _, first = _fit(tmp_path, "same", max_episodes=4, test_interval=2)
  before = _files(tmp_path / "same")
  assert any(p.startswith("epoch_") for p in before) and any(
      p.startswith("latest") for p in before)
  _, second = _fit(tmp_path, "same", max_episodes=4, test_interval=2)
  assert "were moved to" in capsys.readouterr().err
  after = _files(tmp_path / "same")
  moved = {top: [d for d in os.listdir(tmp_path / "same") if d.startswith(top + "-")]
           for top in ("run", "latest")}
  for path, (inode, data) in before.items():
    top, rest = path.split(os.sep, 1)
    where = os.path.join(moved[top][0], rest) if moved.get(top) else path
    assert after[where] == (inode, data), f"{path} was changed"  # same file, untouched
  assert len(moved["run"]) == len(moved["latest"]) == 1
  assert second.best_path != first.best_path
  assert os.path.isfile(checkpoint.resolve(first.best_path))
  assert os.path.isfile(checkpoint.resolve(second.best_path))
  assert os.path.basename(os.path.dirname(second.best_path)).endswith("-2")


class _RisingReturns(gym.Env):
  """A one-step episode whose return rises with every reset (over all
  instances): every greedy test sets a new best."""
  observation_space = gym.spaces.Box(-1., 1., (4,), np.float32)
  action_space = gym.spaces.Discrete(2)
  resets = 0

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    _RisingReturns.resets += 1
    return np.zeros(4, np.float32), {}

  def step(self, action):
    return np.zeros(4, np.float32), float(_RisingReturns.resets), True, False, {}


def _referenced_best_paths(save_dir):
  paths = set()
  for name in _state_files(save_dir):
    run = checkpoint.read(os.path.join(save_dir, run_state.RUN_DIR, name))[3]
    loop = run["loop"]
    paths.update([loop["best_path"]] + loop["best_history"])
  return paths


def test_falling_back_to_an_older_state_finds_its_best_checkpoint(tmp_path, capsys):
  _RisingReturns.resets = 0
  common = dict(TINY, test_interval=1, num_test_episodes=1, keep_checkpoints=2,
                checkpoint_interval=1e9)  # run states at the end only
  save_dir = tmp_path / "rising"

  def fit(episodes):
    return muax.train.run(make_mlp_model(init=False), env=gym.make("CartPole-v1"),
                          test_env=_RisingReturns(), name="rising",
                          tensorboard_dir=str(tmp_path / "tb"),
                          model_save_path=str(save_dir), resume=True,
                          **dict(common, max_episodes=episodes))

  early = fit(2)
  late = fit(6)  # four new bests before its one run state: the early best is stale
  assert late.best_test_return > early.best_test_return
  assert len(_state_files(save_dir)) == 2
  for rel in _referenced_best_paths(save_dir):
    assert os.path.isfile(checkpoint.resolve(save_dir / rel)), rel
  newest = save_dir / run_state.RUN_DIR / _state_files(save_dir)[-1]
  newest.write_bytes(newest.read_bytes()[:1000])
  again = fit(2)  # falls back to the early state, a finished run of 2 episodes
  assert "skipping unreadable run state" in capsys.readouterr().err
  assert again.episodes == 2 and again.best_test_return == early.best_test_return
  assert os.path.isfile(checkpoint.resolve(again.best_path))
  params = make_mlp_model(init=False).load(again.best_path).params
  _assert_same_params(params, make_mlp_model(init=False).load(early.best_path).params)


def test_kept_best_checkpoints_are_exactly_those_the_kept_states_list(tmp_path):
  _RisingReturns.resets = 0
  result = muax.train.run(make_mlp_model(init=False), env=gym.make("CartPole-v1"),
                          test_env=_RisingReturns(), name="exact",
                          tensorboard_dir=str(tmp_path / "tb"),
                          model_save_path=str(tmp_path / "exact"),
                          **dict(TINY, test_interval=1, max_episodes=9, keep_checkpoints=2,
                                 checkpoint_interval=0))
  on_disk = {f"{d}/model_params" for d in os.listdir(tmp_path / "exact")
             if d.startswith("epoch_")}
  assert on_disk == _referenced_best_paths(tmp_path / "exact")
  assert len(on_disk) == 3  # the newest state's two, and one more of the older state
  assert os.path.relpath(result.best_path, tmp_path / "exact") in on_disk


def test_a_second_fit_on_a_folder_in_use_is_refused(tmp_path):
  save_dir = tmp_path / "run"
  proc = _start(save_dir, "--episodes", "400", new_session=True)
  try:
    assert _wait_for_states(proc, save_dir / "models", 4)
    with pytest.raises(run_state.RunFolderInUse, match=rf"in use by another muax run "
                       rf"\(pid {proc.pid} on "):
      muax.fit(make_mlp_model(init=False), env_id="CartPole-v1",
               model_save_path=str(save_dir / "models"), resume=True,
               tensorboard_dir=str(tmp_path / "tb"), **dict(TINY, max_episodes=500))
    proc.send_signal(signal.SIGKILL)  # leaves the lock file behind
    proc.communicate(timeout=60)
  finally:
    _kill_group(proc)
  assert (save_dir / "models" / run_state.LOCK_FILE).exists()
  # A lock whose process is gone is no lock: the next run resumes.
  _, result = _fit(tmp_path, "models", max_episodes=1, resume=str(save_dir / "models"))
  assert result.episodes >= 1
  assert not (save_dir / "models" / run_state.LOCK_FILE).exists()


def test_two_fits_in_one_process_on_one_folder(tmp_path):
  with run_state.locked(tmp_path / "busy"):
    with pytest.raises(run_state.RunFolderInUse, match=f"pid {os.getpid()}"):
      _fit(tmp_path, "busy", max_episodes=1)
  _fit(tmp_path, "busy", max_episodes=1)  # free again


def _kill_group(proc):
  try:
    os.killpg(proc.pid, signal.SIGKILL)
  except (ProcessLookupError, PermissionError):
    pass
  proc.wait(timeout=60)


def test_temporary_files_of_cut_writes_are_cleaned_and_nothing_else(tmp_path):
  _, first = _fit(tmp_path, "tmp", max_episodes=2, test_interval=1)
  best_dir = os.path.dirname(first.best_path)
  strays = [os.path.join(best_dir, ".model_params.npz.abcd_123.tmp"),
            str(tmp_path / "tmp" / "latest" / ".model_params.npz.zz9yx8wv.tmp"),
            str(tmp_path / "tmp" / run_state.RUN_DIR / ".state_0000004.npz.q1w2e3r4.tmp")]
  keep = [os.path.join(best_dir, "notes.txt"), str(tmp_path / "tmp" / "latest" / ".keep")]
  for path in strays + keep:
    open(path, "w").write("x")
  _fit(tmp_path, "tmp", max_episodes=3, test_interval=1, resume=True)
  assert not any(os.path.exists(p) for p in strays)
  assert all(os.path.exists(p) for p in keep)


# -- resume checks what it resumes ---------------------------------------------


@pytest.mark.parametrize("change, match", [
    (dict(policy="gumbel"), "policy='muzero', this call has policy='gumbel'"),
    (dict(discount=0.9), "discount=0.99, this call has discount=0.9"),
])
def test_resume_refuses_another_policy_or_discount(tmp_path, change, match):
  _fit(tmp_path, "policy", max_episodes=2)
  files = _state_files(tmp_path / "policy")
  model = make_mlp_model(init=False, **change)
  with pytest.raises(ValueError, match=match):
    muax.fit(model, env_id="CartPole-v1", model_save_path=str(tmp_path / "policy"),
             tensorboard_dir=str(tmp_path / "tb"), resume=True,
             buffer=muax.TrajectoryReplayBuffer(30), **dict(TINY, max_episodes=3))
  assert _state_files(tmp_path / "policy") == files  # nothing set aside


def test_resume_refuses_another_two_player_setting(tmp_path):
  env = muax.games.PettingZooEnv("tictactoe_v3")
  settings = dict(TINY, max_episodes=1, buffer_warm_up=1)
  muax.fit(make_mlp_model(num_actions=9, obs_dim=18, two_player=True, init=False),
           env=env, test_env=env, tracer=muax.PNStep(3, 1., two_player=True),
           model_save_path=str(tmp_path / "ttt"), tensorboard_dir=str(tmp_path / "tb"),
           **settings)
  with pytest.raises(ValueError, match="two_player=True, this call has two_player=False"):
    muax.fit(make_mlp_model(num_actions=9, obs_dim=18, init=False), env=env, test_env=env,
             tracer=muax.PNStep(3, 1.), model_save_path=str(tmp_path / "ttt"),
             tensorboard_dir=str(tmp_path / "tb"), resume=True, **settings)


class _OtherCartPole(gym.Wrapper):
  """CartPole's spaces under another class name: another environment."""

  def __init__(self):
    from gymnasium.envs.classic_control import CartPoleEnv
    super().__init__(CartPoleEnv())


class _Unbounded(gym.Wrapper):
  def __init__(self):
    super().__init__(gym.make("CartPole-v1").unwrapped)
    self.observation_space = gym.spaces.Box(-1., 1., (5,), np.float32)


def test_a_vector_run_from_a_factory_records_its_env_and_refuses_another(tmp_path):
  common = dict(TINY, max_episodes=2, num_envs=2, vectorization="sync")
  kwargs = dict(model_save_path=str(tmp_path / "vec"), tensorboard_dir=str(tmp_path / "tb"),
                test_env=gym.make("CartPole-v1"))
  muax.fit(make_mlp_model(init=False), env=lambda: gym.make("CartPole-v1"), **kwargs,
           **common)
  run = checkpoint.read(tmp_path / "vec" / run_state.RUN_DIR /
                        _state_files(tmp_path / "vec")[-1])[3]
  assert run["config"]["env"] == "CartPole-v1"
  assert run["config"]["observation_space"] == "Box(shape=(4,), dtype=float32)"
  with pytest.raises(ValueError, match="trained on 'CartPole-v1', this call trains on "
                                       "'CartPoleEnv'"):
    muax.fit(make_mlp_model(init=False), env=lambda: _OtherCartPole(), resume=True,
             **kwargs, **common)
  assert acting.env_name(gym.vector.SyncVectorEnv([_OtherCartPole])) == "CartPoleEnv"


def test_resume_refuses_other_spaces_under_the_same_name(tmp_path):
  def make():
    return gym.make("CartPole-v1")

  common = dict(TINY, max_episodes=2)
  kwargs = dict(model_save_path=str(tmp_path / "sp"), tensorboard_dir=str(tmp_path / "tb"))
  muax.fit(make_mlp_model(init=False), env=make, test_env=make(), **kwargs, **common)

  def make():  # noqa: F811  (the same name, other observations)
    return _Unbounded()

  with pytest.raises(ValueError, match=r"observation_space='Box\(shape=\(4,\)"):
    muax.fit(make_mlp_model(init=False, obs_dim=5), env=make, test_env=make(),
             resume=True, **kwargs, **common)


def test_resume_with_the_other_replay_kind_is_refused_and_sets_nothing_aside(tmp_path):
  _fit(tmp_path, "kind", max_episodes=2)
  files = _state_files(tmp_path / "kind")
  with pytest.raises(ValueError, match="used a uniform TrajectoryReplayBuffer, this call "
                                       "passes a PrioritizedReplayBuffer"):
    _fit(tmp_path, "kind", max_episodes=3, resume=True,
         buffer=muax.PrioritizedReplayBuffer(30, random_seed=5))
  with pytest.raises(checkpoint.CheckpointError, match="do not fit"):
    muax.train.run(make_mlp_model(init=False, embedding=16), env_id="CartPole-v1",
                   model_save_path=str(tmp_path / "kind"), resume=True,
                   tensorboard_dir=str(tmp_path / "tb"),
                   buffer=muax.TrajectoryReplayBuffer(30), **dict(TINY, max_episodes=3))
  assert _state_files(tmp_path / "kind") == files


def _rewrite_run_record(file, change):
  params, opt, meta, run, arrays = checkpoint.read(file, run_arrays=True)
  change(run)
  checkpoint.save(file, params, opt, meta, run=run, arrays=arrays)


@pytest.mark.parametrize("change", [
    lambda run: run["loop"].pop("episode"),
    lambda run: run["loop"].update(best_history="epoch_1"),
    lambda run: run["loop"].update(seeds_state={"bit_generator": "nope"}),
    lambda run: run["buffer"].update(capacity=-3),
    lambda run: run.update(buffer=[1, 2]),
])
def test_a_damaged_run_record_falls_back_to_the_previous_state(tmp_path, change, capsys):
  _fit(tmp_path, "rec", max_episodes=3)
  files = _state_files(tmp_path / "rec")
  _rewrite_run_record(tmp_path / "rec" / run_state.RUN_DIR / files[-1], change)
  _, result = _fit(tmp_path, "rec", max_episodes=3, resume=True)
  assert "skipping unreadable run state" in capsys.readouterr().err
  assert result.episodes == 3
  assert (tmp_path / "rec" / run_state.RUN_DIR / (files[-1] + ".bad")).exists()


def test_when_every_state_is_damaged_resume_says_so(tmp_path):
  _fit(tmp_path, "all", max_episodes=2)
  for name in _state_files(tmp_path / "all"):
    (tmp_path / "all" / run_state.RUN_DIR / name).write_bytes(b"PK\x03\x04 broken")
  with pytest.raises(checkpoint.CheckpointError, match="none of the 3 run states"):
    _fit(tmp_path, "all", max_episodes=2, resume=True)


# -- Discrete(n, start) ----------------------------------------------------------


class _Offset(gym.Wrapper):
  """CartPole with actions 5 and 6 (Discrete(2, start=5)); records what it got."""
  seen = []

  def __init__(self):
    super().__init__(gym.make("CartPole-v1"))
    self.action_space = gym.spaces.Discrete(2, start=5)

  def step(self, action):
    assert self.action_space.contains(action), action
    _Offset.seen.append(int(action))
    return self.env.step(int(action) - 5)


@pytest.mark.parametrize("num_envs", [1, 2])
def test_discrete_actions_with_a_start_are_offset(tmp_path, num_envs):
  _Offset.seen = []
  settings = dict(TINY, max_episodes=2, num_envs=num_envs, vectorization="sync")
  result = muax.train.run(make_mlp_model(init=False), env=_Offset if num_envs > 1 else _Offset(),
                          test_env=_Offset(), tensorboard_dir=str(tmp_path / "tb"),
                          model_save_path=str(tmp_path / "off"), **settings)
  assert set(_Offset.seen) == {5, 6}
  _Offset.seen = []
  model = make_mlp_model(init=False).load(result.best_path)
  muax.test.test(model, _Offset(), jax.random.PRNGKey(0), num_simulations=3,
                 num_test_episodes=1)
  assert _Offset.seen and set(_Offset.seen) <= {5, 6}


@pytest.mark.parametrize("signum, codes", [(signal.SIGINT, (-signal.SIGINT, 130)),
                                           (signal.SIGTERM, (143,))])
def test_a_second_signal_stops_a_run_whose_env_worker_hangs(tmp_path, signum, codes):
  save_dir = tmp_path / "run"
  proc = _start(save_dir, "--num-envs", "2", "--vectorization", "async", "--episodes",
                "400", "--hang-after", "120", new_session=True)
  try:
    deadline = time.monotonic() + 180
    while not (save_dir / "hung").exists():
      assert proc.poll() is None and time.monotonic() < deadline, "no worker hung"
      time.sleep(0.05)
    proc.send_signal(signum)
    time.sleep(1.5)
    assert proc.poll() is None  # the first signal waits for the step to finish
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in codes, err[-3000:]
    assert "stop" in err and "at once" in err
    deadline = time.monotonic() + 20
    while True:  # the hung worker was terminated, not left behind
      try:
        os.killpg(proc.pid, 0)
      except ProcessLookupError:
        break
      assert time.monotonic() < deadline, "environment workers are still running"
      time.sleep(0.1)
  finally:
    _kill_group(proc)
  files = _state_files(save_dir / "models")
  assert files and checkpoint.read(save_dir / "models" / run_state.RUN_DIR / files[-1])


def test_a_bit_flip_in_the_newest_state_falls_back_to_the_previous_one(tmp_path, capsys):
  _fit(tmp_path, "flip", max_episodes=3)
  folder = tmp_path / "flip" / run_state.RUN_DIR
  newest = folder / _state_files(tmp_path / "flip")[-1]
  data = bytearray(newest.read_bytes())
  # A [64, 21] weight's .npy header: one flip makes it [44, 21], so a reader
  # that stops there never reaches the entry's zip CRC-32 (numpy's does).
  at = data.find(b"'shape': (64, 21)") + len(b"'shape': (")
  assert at > 100 and data[at] == ord("6")
  data[at] ^= 0b10
  newest.write_bytes(bytes(data))
  _, result = _fit(tmp_path, "flip", max_episodes=3, resume=True)
  assert "skipping unreadable run state" in capsys.readouterr().err
  assert result.episodes == 3 and (folder / (newest.name + ".bad")).exists()


def test_resuming_an_older_state_by_name_keeps_the_newer_ones(tmp_path, capsys):
  _fit(tmp_path, "older", max_episodes=6, keep_checkpoints=3)
  newer = _state_files(tmp_path / "older")
  assert newer == ["state_0000006.npz", "state_0000007.npz", "state_0000008.npz"]
  chosen = tmp_path / "older" / run_state.RUN_DIR / newer[0]
  model = make_mlp_model(init=False)
  muax.train.run(model, env_id="CartPole-v1", tensorboard_dir=str(tmp_path / "tb"),
                 resume=str(chosen), buffer=muax.TrajectoryReplayBuffer(30),
                 **dict(TINY, max_episodes=5, keep_checkpoints=1))
  assert "the newer run states were moved to" in capsys.readouterr().err
  moved = [d for d in os.listdir(tmp_path / "older") if d.startswith("run-")]
  assert len(moved) == 1
  assert sorted(os.listdir(tmp_path / "older" / moved[0])) == newer[1:]
  assert _state_files(tmp_path / "older") == ["state_0000007.npz"]  # the resumed run's


def test_a_model_that_cannot_take_the_saved_observations_sets_nothing_aside(tmp_path):
  import haiku as hk
  _fit(tmp_path, "conv", max_episodes=2)
  files = _state_files(tmp_path / "conv")

  def conv_representation(obs):  # needs [B, H, W, C] images
    return hk.Conv2D(8, 3)(obs).reshape(obs.shape[0], -1)

  size = 21
  model = muax.MuZero(conv_representation,
                      muax.nn._init_prediction_func(muax.nn.Prediction, 2, size),
                      muax.nn._init_dynamic_func(muax.nn.Dynamic, 8, 2, size))
  with pytest.raises(checkpoint.CheckpointError, match="cannot take") as info:
    muax.train.run(model, env_id="CartPole-v1", model_save_path=str(tmp_path / "conv"),
                   tensorboard_dir=str(tmp_path / "tb"), resume=True,
                   buffer=muax.TrajectoryReplayBuffer(30), **dict(TINY, max_episodes=3))
  assert not isinstance(info.value, checkpoint.UnreadableCheckpointError)
  assert _state_files(tmp_path / "conv") == files
