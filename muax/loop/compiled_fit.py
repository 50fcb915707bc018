"""`fit_compiled`: `fit`'s services around the compiled loop's chunks.

Between chunks of `CompiledLoop.run` the host tests the greedy policy, logs
to TensorBoard, shows a progress bar, keeps the best checkpoint and writes the
run state: the loop's whole state (training state, environments, device
replay, keys, counters) in one atomically written checkpoint file, which is
also a model checkpoint `MuZero.load` reads. `resume=True` continues it bit
for bit; Ctrl+C or SIGTERM stops after the current chunk, saving it first.
"""
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from muax import checkpoint
from muax import run_state
from muax.loop import progress
from muax.loop.errors import ResumeMismatch
from muax.loop.errors import TrainingInterrupted
from muax.loop.jitted import CompiledConfig
from muax.loop.jitted import CompiledLoop
from muax.loop.signals import StopSignals

__all__ = ["RUN_FILE", "fit_compiled", "load_run", "save_run"]

RUN_FILE = "compiled_run.npz"  # the run state, in model_save_path
_KIND = "compiled-loop"
_BEST = "best"  # the best checkpoint's folder, in model_save_path


def fit_compiled(model: Any, env: Any, env_params: Any = None, *,
                 config: CompiledConfig = CompiledConfig(), max_env_steps: int = 100_000,
                 chunk: int = 250, test_episodes: int = 8, test_max_steps: int = 500,
                 target_return: Optional[float] = None, model_save_path: Any = "models",
                 save_name: str = "model", tensorboard_dir: Optional[str] = None,
                 progress_bar: bool = True, resume: bool = False, random_seed: int = 0,
                 on_chunk: Optional[Callable[[dict], None]] = None,
                 test_env: Any = None) -> Optional[str]:
  """Trains `model` on a JAX environment with the compiled loop.

  Args:
    model: an initialised `muax.MuZero`; it holds the final training state
      when this returns.
    env, env_params, config, test_env: as for `CompiledLoop`.
    max_env_steps: stop after this many steps (all environments together), in whole
      chunks (rounded up).
    chunk: iterations per call of the compiled program (one iteration steps
      every environment once); tests, logs and run states come between chunks.
    test_episodes, test_max_steps: the greedy test after each chunk.
    target_return: stop once a test's mean return reaches it.
    model_save_path: the run's folder: `best/<save_name>.npz` and `RUN_FILE`.
      One run at a time trains in it (it is locked); a new run first moves an
      earlier run's state and `best/` aside, to `compiled_run-<time>.npz` and
      `best-<time>/`.
    tensorboard_dir: TensorBoard logs (None: none).
    progress_bar: show a tqdm bar of env steps.
    resume: continue the run state in `model_save_path` (a fresh run when
      there is none).
    random_seed: the seed of environments, search and sampling.
    on_chunk: called with each chunk's summary dict (a user's hook).

  Returns:
    the best checkpoint's path (by test return), or None before any test.

  Raises:
    muax.train.ResumeMismatch: the run state is of another model or loop.
    muax.run_state.RunFolderInUse: another run trains in `model_save_path`.
    muax.train.TrainingInterrupted: Ctrl+C or SIGTERM, after saving the run.
  """
  loop = CompiledLoop(model, env, env_params, config, test_env=test_env)
  folder = Path(model_save_path)
  with run_state.locked(folder):
    _clean_temporary(folder)
    run_file = folder / RUN_FILE
    state = loop.init(jax.random.PRNGKey(random_seed))
    record = {"kind": _KIND, "best_return": None, "best_path": None, "chunks": 0}
    if resume and checkpoint.file_for(run_file).exists():
      state, record = load_run(run_file, state)
      state = loop.place(state)
    else:  # a new run: an earlier run's state and best checkpoint are kept aside
      run_state.move_aside([checkpoint.file_for(run_file), folder / _BEST])
    return _run(model, loop, state, record, folder, save_name, max_env_steps, chunk,
                test_episodes, test_max_steps, target_return, tensorboard_dir, progress_bar,
                random_seed, on_chunk)


def _run(model, loop, state, record, folder, save_name, max_env_steps, chunk, test_episodes,
         test_max_steps, target_return, tensorboard_dir, progress_bar, random_seed, on_chunk):
  """The chunks, once the run folder is locked and the state built or loaded."""
  run_file = folder / RUN_FILE
  writer = None
  if tensorboard_dir is not None:
    from tensorboardX import SummaryWriter  # noqa: PLC0415 (only when logging)
    writer = SummaryWriter(tensorboard_dir)
  per_chunk = chunk * loop.config.num_envs  # whole chunks: max_env_steps rounded up
  bar = progress.progress_bar(progress_bar, total=-(-max_env_steps // per_chunk) * per_chunk,
                              initial=int(state.env_steps), unit="step")
  start = time.perf_counter()
  signals = StopSignals(lambda: str(checkpoint.file_for(run_file)))
  try:
    with signals:
      while int(state.env_steps) < max_env_steps:
        state, metrics = loop.run(state, chunk)
        summary = _summarise(jax.device_get(metrics), state, record, loop, test_episodes,
                             test_max_steps, random_seed, time.perf_counter() - start)
        if record["best_return"] is None or summary["test_return"] > record["best_return"]:
          model.restore_train_state(jax.device_get(state.train))
          best = Path(model.save(folder / _BEST / save_name))
          # Relative to the run folder, so a moved folder still resumes.
          record.update(best_return=summary["test_return"],
                        best_path=str(best.relative_to(folder)))
        save_run(run_file, model, state, record)
        _log(writer, bar, summary, record)
        if on_chunk is not None:
          on_chunk(summary)
        if target_return is not None and summary["test_return"] >= target_return:
          break
        if signals.requested():
          _stop(signals.signum, run_file, summary)
  finally:
    bar.close()
    if writer is not None:
      writer.close()
    try:  # the model ends with the run's last training state
      model.restore_train_state(jax.device_get(state.train))
    except RuntimeError:  # a chunk failed after its input was donated: keep the best
      pass
  return None if record["best_path"] is None else str(folder / record["best_path"])


def _clean_temporary(folder: Path) -> None:
  """Removes what checkpoint writes a crash cut short left (under the lock)."""
  for place in (folder, folder / _BEST):
    if place.is_dir():
      for file in place.iterdir():
        if checkpoint.is_temporary(file.name):
          file.unlink()


def save_run(file: Any, model: Any, state: Any, record: dict) -> Path:
  """Writes the loop's whole `state` (and the run's `record`) as one checkpoint
  of `model` at its current training state."""
  host = jax.device_get(state)
  leaves = jax.tree_util.tree_leaves(host)
  record = dict(record, num_leaves=len(leaves), env_steps=int(host.env_steps))
  return checkpoint.save(file, host.train.params, host.train.opt_state,
                         model.checkpoint_metadata(), run=record,
                         arrays={f"leaf{i}": leaf for i, leaf in enumerate(leaves)})


def load_run(file: Any, template: Any) -> tuple:
  """`(state, record)` from a run state, checked against `template` (what
  `CompiledLoop.init` builds for the same model, environment and config)."""
  _, _, _, record, arrays = checkpoint.read(file, run_arrays=True)
  leaves, treedef = jax.tree_util.tree_flatten(template)
  if not record or record.get("kind") != _KIND or record.get("num_leaves") != len(leaves):
    raise ResumeMismatch(f"{checkpoint.file_for(file)} is not a compiled-loop run state of "
                         "this model and loop (another kind of run, or another structure)")
  saved = [arrays[f"leaf{i}"] for i in range(len(leaves))]
  for i, (new, old) in enumerate(zip(saved, leaves)):
    if new.shape != np.shape(old) or new.dtype != jnp.asarray(old).dtype:
      raise ResumeMismatch(
          f"{checkpoint.file_for(file)} does not fit this model and loop: its part {i} is "
          f"{new.dtype}{list(new.shape)}, this run's {jnp.asarray(old).dtype}"
          f"{list(np.shape(old))} (another network, environment count or capacity)")
  return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(x) for x in saved]), record


def _summarise(metrics, state, record, loop, episodes, max_steps, seed, elapsed) -> dict:
  record["chunks"] += 1
  test = np.asarray(loop.evaluate(state.train.params,
                                  jax.random.PRNGKey(seed * 7919 + record["chunks"]),
                                  episodes, max_steps))
  finished = float(metrics["episodes"].sum())
  losses = metrics["loss"][np.isfinite(metrics["loss"])]
  return {"chunk": record["chunks"], "env_steps": int(state.env_steps),
          "updates": int(state.train.count), "test_return": float(test.mean()),
          "episode_return": (float(metrics["return_sum"].sum()) / finished if finished
                             else float("nan")),
          "episodes": int(finished), "loss": float(losses.mean()) if losses.size else float("nan"),
          "elapsed": elapsed}


def _log(writer, bar, summary, record):
  steps = summary["env_steps"]
  if writer is not None:
    for name in ("test_return", "episode_return", "loss", "updates", "episodes"):
      if np.isfinite(summary[name]):  # a chunk may end no episode, or learn nothing yet
        writer.add_scalar(f"train/{name}", summary[name], steps)
    writer.add_scalar("train/env_steps_per_s", steps / max(summary["elapsed"], 1e-9), steps)
    writer.flush()
  bar.update(steps - getattr(bar, "n", steps))
  shown = lambda value, form: "-" if not np.isfinite(value) else format(value, form)  # noqa: E731
  bar.set_postfix({"test": shown(summary["test_return"], ".0f"),
                   "best_test": shown(record["best_return"], ".0f"),
                   "ep_ret": shown(summary["episode_return"], ".0f"),
                   "loss": shown(summary["loss"], ".3f")}, refresh=False)


def _stop(signum, run_file, summary):
  name = signal.Signals(signum).name
  path = str(checkpoint.file_for(run_file))
  message = (f"muax: {name} received; stopped after {summary['env_steps']} env steps and "
             f"saved the run to {path}. Resume it with fit_compiled(..., resume=True) and "
             "the same model_save_path.")
  print("\n" + message, file=sys.stderr, flush=True)
  raise TrainingInterrupted(signum, path, message)

