"""Soak test: RSS of a long `muax.fit` run on CartPole-v1 with the replay buffer full.

`fit` trains with a buffer bounded by `--max-transitions` (small enough to fill
in the first minutes) and limits it never reaches; a background thread reads
the process's RSS every `--interval` seconds and prints one JSON line per
sample (elapsed_s, rss_mb, episodes, transitions, buffer_nbytes, ...). After
`--minutes` it prints a summary line (RSS at the first sample with the buffer
full, the largest RSS after it, their relative growth) and ends the process:
`fit` has no stop signal, so the thread calls `os._exit`. Usage:

  python benchmarks/soak.py                 # 30 minutes, 300,000-step buffer
  python benchmarks/soak.py --minutes 1 --interval 5 --max-transitions 3000
"""
import argparse
import json
import os
import shutil
import tempfile
import threading
import time

import muax
from muax import cli


class CountingBuffer(muax.TrajectoryReplayBuffer):
  """A replay buffer that counts the episodes added and the batches sampled."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.episodes = 0
    self.updates = 0

  def add(self, trajectory, w=1.):
    super().add(trajectory, w)
    self.episodes += 1

  def sample(self, *args, num_batches=None, **kwargs):
    batches = super().sample(*args, num_batches=num_batches, **kwargs)
    self.updates += 1 if num_batches is None else num_batches
    return batches


class Monitor:
  """Prints RSS samples as JSON lines and the summary once the time is up."""

  def __init__(self, buffer, minutes, interval, workdir):
    self.buffer, self.workdir = buffer, workdir
    self.minutes, self.interval = minutes, interval
    self.start = time.monotonic()
    self.rss_full = self.full_at = None
    self.rss_max_after_full = self.rss_min_after_full = self.rss_last = None
    self.rss_max_after_min = None
    self.lock = threading.Lock()
    self.finished = False

  def sample(self):
    buffer = self.buffer
    rss = rss_mb()
    # Full: something has been evicted, so every add now replaces old steps.
    full = buffer.episodes > len(buffer)
    row = {"elapsed_s": round(time.monotonic() - self.start, 1), "rss_mb": rss,
           "episodes": buffer.episodes, "trajectories": len(buffer),
           "transitions": buffer.num_transitions(),
           "buffer_nbytes": buffer.nbytes(), "updates": buffer.updates,
           "buffer_full": full}
    if full and rss is not None and self.rss_full is None:
      self.rss_full, self.full_at = rss, row["elapsed_s"]
    if full and rss is not None:
      self.rss_max_after_full = max(self.rss_max_after_full or rss, rss)
      if self.rss_min_after_full is None or rss < self.rss_min_after_full:
        self.rss_min_after_full = self.rss_max_after_min = rss
      self.rss_max_after_min = max(self.rss_max_after_min, rss)
    self.rss_last = rss
    print(json.dumps(row), flush=True)

  def summary(self, reason):
    with self.lock:
      if self.finished:
        return
      self.finished = True
      after = self.rss_max_after_full
      growth = (None if self.rss_full is None
                else round((after - self.rss_full) / self.rss_full, 4))
      low = self.rss_min_after_full
      growth_from_min = (None if low is None
                         else round((self.rss_max_after_min - low) / low, 4))
      print(json.dumps({
          "summary": True, "reason": reason,
          "elapsed_s": round(time.monotonic() - self.start, 1),
          "episodes": self.buffer.episodes, "updates": self.buffer.updates,
          "max_transitions": self.buffer.max_transitions,
          "buffer_full_at_s": self.full_at, "rss_full_mb": self.rss_full,
          "rss_max_after_full_mb": after, "relative_growth": growth,
          # RSS can drop once (start-up and compilation memory handed back):
          # growth from the lowest full-buffer sample to the largest after it.
          "rss_min_after_full_mb": low, "relative_growth_from_min": growth_from_min,
          "rss_last_mb": self.rss_last}), flush=True)

  def run(self):
    deadline = self.start + 60. * self.minutes
    next_sample = self.start
    while True:
      next_sample += self.interval
      time.sleep(max(0., min(next_sample, deadline) - time.monotonic()))
      self.sample()
      if time.monotonic() >= deadline:
        self.summary("time limit")
        shutil.rmtree(self.workdir, ignore_errors=True)
        os._exit(0)  # `fit` is still running in the main thread


def rss_mb():
  """Resident set size in MiB, from /proc/self/status (None when unavailable)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return round(int(line.split()[1]) / 1024, 1)
  except OSError:
    pass
  return None


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--minutes", type=float, default=30.)
  parser.add_argument("--interval", type=float, default=30., help="seconds between samples")
  parser.add_argument("--max-transitions", type=int, default=300_000,
                      help="the buffer's step bound")
  parser.add_argument("--num-simulations", type=int, default=10)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  config = cli.TrainConfig(env_id="CartPole-v1", num_simulations=args.num_simulations,
                           seed=args.seed)
  model = cli.build_model(config, num_actions=2)
  buffer = CountingBuffer(max_transitions=args.max_transitions, random_seed=args.seed)
  workdir = tempfile.mkdtemp(prefix="muax_soak_")
  monitor = Monitor(buffer, args.minutes, args.interval, workdir)
  print(json.dumps({"bench": "soak", "minutes": args.minutes, "interval_s": args.interval,
                    "max_transitions": args.max_transitions,
                    "num_simulations": args.num_simulations, "seed": args.seed}),
        flush=True)
  threading.Thread(target=monitor.run, daemon=True).start()
  try:
    # Limits far beyond the time budget: the monitor ends the run.
    muax.fit(model, "CartPole-v1", tracer=muax.PNStep(config.n_step, config.discount, 0.5),
             buffer=buffer, max_episodes=10 ** 9, max_training_steps=10 ** 12,
             num_simulations=args.num_simulations, k_steps=config.k_steps,
             num_trajectory=config.num_trajectory,
             sample_per_trajectory=config.sample_per_trajectory,
             buffer_warm_up=config.buffer_warm_up, test_interval=100, num_test_episodes=3,
             tensorboard_dir=os.path.join(workdir, "tb"),
             model_save_path=os.path.join(workdir, "models"), random_seed=args.seed,
             progress=False)
    monitor.sample()
    monitor.summary("fit returned")
  finally:
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
  main()
