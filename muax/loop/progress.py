"""What a `fit` run shows while it trains: TensorBoard scalars and a progress bar."""
from typing import Any, Optional

import numpy as np

__all__ = ["log_episode", "progress_bar", "update_bar"]


def log_episode(writer: Any, episode: int, episode_out: Any, metrics: dict, loop: Any,
                log_all: bool) -> None:
  writer.add_scalar("train/episode_return", episode_out.episode_return, episode)
  writer.add_scalar("train/episode_length", episode_out.length, episode)
  writer.add_scalar("train/training_step", loop.training_steps, episode)
  writer.add_scalar("train/env_steps", loop.env_steps, episode)
  writer.add_scalar("train/wall_clock", loop.elapsed(), episode)
  writer.add_scalar("train/env_steps_per_s", loop.env_steps / max(loop.elapsed(), 1e-9),
                    episode)
  writer.add_scalar("train/temperature", loop.temperature(), episode)
  if "skipped" in metrics:
    writer.add_scalar("train/skipped_updates", metrics["skipped"], episode)
  keys = metrics.keys() if log_all else ("loss", "value", "n_step_return")
  for key in keys:
    if key in metrics:
      writer.add_scalar(f"train/{key}", metrics[key], episode)


class _NoBar:
  def set_description(self, *_):
    pass

  def set_postfix(self, *_, **__):
    pass

  def update(self, *_):
    pass

  def close(self):
    pass


def progress_bar(show: bool, total: int, initial: int = 0, unit: str = "upd") -> Any:
  if not show:
    return _NoBar()
  from tqdm.auto import tqdm
  return tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True)


def update_bar(bar: Any, loop: Any, episode_out: Any, metrics: dict,
               test_return: Optional[float], best_return: float) -> None:
  bar.update(loop.training_steps - getattr(bar, "n", loop.training_steps))
  postfix = {"ep_ret": f"{episode_out.episode_return:.0f}",
             "best_test": f"{best_return:.0f}" if np.isfinite(best_return) else "-",
             "loss": f"{metrics.get('loss', float('nan')):.3f}",
             "steps/s": f"{loop.env_steps / max(loop.elapsed(), 1e-9):.0f}",
             "time": _clock(loop.elapsed())}
  if test_return is not None:
    postfix["test"] = f"{test_return:.0f}"
  if loop.skipped_in_a_row:
    postfix["skipped"] = str(loop.skipped_in_a_row)
  bar.set_postfix(postfix, refresh=False)


def _clock(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
