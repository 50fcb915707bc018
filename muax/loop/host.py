"""`HostLoop`: the counters, keys and steps of one `fit` run on the host.

It collects episodes (an `acting.Actor` over one or N gymnasium
environments), stores them in replay, learns from sampled windows and
evaluates; the schedule that calls these is `muax.train.run`, and the run
states are `muax.loop.checkpointing`'s. With a single environment each
learning call waits for its updates. With a vector environment each one is
a fused dispatch and acting searches with the parameters from before it, so
the device learns while the host steps environments; metrics are read one
call late. Both are deterministic for a given seed.
"""
import collections
import time

import gymnasium as gym
import jax
import numpy as np

from muax import acting
from muax.loop.config import FitConfig
from muax.loop.evaluation import evaluate
from muax.loop.learning import PRIORITY
from muax.loop.learning import mean_metrics

__all__ = ["COUNTERS", "HostLoop"]

# The loop's counters, saved in every run state.
COUNTERS = ("warmup_done", "episode", "env_steps", "training_steps", "skipped_in_a_row")


class HostLoop:
  """One `fit` run's acting, learning and testing, and what they count."""

  def __init__(self, model, env, test_env, tracer, buffer, config: FitConfig):
    self.model, self.env, self.test_env = model, env, test_env
    self.tracer, self.buffer, self.config = tracer, buffer, config
    self.keys = acting.KeyStream(jax.random.PRNGKey(config.random_seed))
    # Every episode starts from its own seed; the sequence is fixed by the seed.
    self.seeds = np.random.default_rng(config.random_seed)
    self.vectorized = isinstance(env, gym.vector.VectorEnv)
    self.collector = None
    self.pending_episodes = collections.deque()
    self.actor_params = None
    self.pending_metrics = None
    self.warmup_done = self.episode = self.env_steps = 0
    self.training_steps = self.skipped_in_a_row = 0
    self.tests = []  # dicts of muax.train.TestRecord's fields
    self.stop = lambda: False
    self.start = time.perf_counter()
    self.changed = False  # replay or keys changed since the last `snapshot`

  def ensure_initialised(self) -> None:
    if self.model.params is None:
      obs, _ = self.env.reset(seed=int(self.seeds.integers(2 ** 31)))
      obs = np.asarray(obs)
      self.model.init(self.keys(), obs[:1] if self.vectorized else obs[None])

  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  def temperature(self) -> float:
    return self.config.temperature(self.training_steps)

  # -- what a run state holds ---------------------------------------------

  def snapshot(self) -> dict:
    """The loop's part of a `run_state.Boundary` (cheap: arrays are shared)."""
    key, spare = self.keys.state()
    self.changed = False
    return dict({name: getattr(self, name) for name in COUNTERS},
                seconds=self.elapsed(), train_state=self.model.train_state, key=key,
                spare_keys=spare, seeds_state=self.seeds.bit_generator.state,
                tests=list(self.tests))

  def resume_from(self, record: dict, keys: acting.KeyStream,
                  seeds: np.random.Generator) -> None:
    """Takes the counters, keys and tests of a checked run-state record."""
    self.keys, self.seeds = keys, seeds
    for name in COUNTERS:
      setattr(self, name, int(record[name]))
    self.start = time.perf_counter() - float(record["seconds"])
    self.tests = list(record["tests"])

  # -- acting, learning, testing -------------------------------------------

  def collect(self) -> acting.Episode:
    """Plays until an episode ends, stores it in replay and returns it."""
    if self.vectorized:
      episode = self._next_vector_episode()
    else:
      episode = acting.run_episode(
          self.model, self.env, self.keys, num_simulations=self.config.num_simulations,
          temperature=self.temperature(), seed=int(self.seeds.integers(2 ** 31)),
          tracer=self.tracer, max_episode_steps=self.config.max_episode_steps,
          stop=self.stop)
      self.env_steps += episode.length
    trajectory = episode.trajectory
    self.changed = True
    self.buffer.add(trajectory, float(np.mean(trajectory.batched_transitions.w)))
    return episode

  def _next_vector_episode(self) -> acting.Episode:
    if self.collector is None:
      self.collector = acting.Actor(
          self.model, self.env, self.keys, num_simulations=self.config.num_simulations,
          tracer=self.tracer, seed=int(self.seeds.integers(2 ** 31)))
    while not self.pending_episodes:
      if self.stop():
        raise acting.Stopped()
      self.pending_episodes.extend(
          self.collector.step(self.temperature(), params=self.actor_params))
      self.env_steps += self.collector.num_envs  # the collector restarts on resume
    return self.pending_episodes.popleft()

  def learn(self) -> dict:
    """Runs up to `num_update_per_episode` updates; returns mean metrics (see
    the module doc).

    With a prioritized buffer, the value errors of each update become the
    priorities of the windows it learned from (read with the metrics).
    """
    config = self.config
    num_updates = min(config.num_update_per_episode,
                      config.max_training_steps - self.training_steps)
    self.changed = True  # sampling advances the buffer's generator
    if num_updates <= 0:
      return self.flush_metrics() if self.vectorized else {}
    options = dict(num_trajectory=config.num_trajectory, k_steps=config.k_steps,
                   sample_per_trajectory=config.sample_per_trajectory,
                   num_batches=num_updates)
    if self.model.reanalyze is not None:
      options["bootstrap"] = (self.tracer.n, self.tracer.step_discount)
    ids = None
    if getattr(self.buffer, "prioritized", False):
      batches, ids = self.buffer.sample(return_ids=True, **options)
    else:
      batches = self.buffer.sample(**options)
    if not self.vectorized:
      metrics = self.model.update_many_async(batches)
      self.training_steps += num_updates
      return self._host_metrics((metrics, ids))
    self.actor_params = self.model.params
    metrics = self.model.update_many_async(batches)
    self.training_steps += num_updates
    previous, self.pending_metrics = self.pending_metrics, (metrics, ids)
    return self._host_metrics(previous) if previous is not None else {}

  def flush_metrics(self) -> dict:
    metrics, self.pending_metrics = self.pending_metrics, None
    return self._host_metrics(metrics) if metrics is not None else {}

  def _host_metrics(self, metrics_and_ids) -> dict:
    """Mean metrics; counts the updates skipped in a row (non-finite) and
    writes the new priorities of a prioritized buffer."""
    metrics, ids = metrics_and_ids
    metrics = jax.device_get(metrics)
    skipped = np.asarray(metrics.get("skipped", ()), bool).reshape(-1)
    if skipped.size:
      finite = np.flatnonzero(~skipped)
      trailing = skipped.size if finite.size == 0 else skipped.size - 1 - finite[-1]
      self.skipped_in_a_row = (self.skipped_in_a_row + trailing if finite.size == 0
                               else trailing)
    if ids is not None and PRIORITY in metrics:
      priorities = np.asarray(metrics[PRIORITY], np.float64)
      ok = np.isfinite(priorities)  # a skipped update leaves its windows' priorities
      self.buffer.update_priorities(ids[ok], priorities[ok])
    return mean_metrics(metrics)

  def evaluate(self) -> float:
    """The mean greedy return over `num_test_episodes` test episodes."""
    vector = isinstance(self.test_env, gym.vector.VectorEnv)
    # One test environment plays its episodes with a key of their own.
    keys = self.keys if vector else acting.KeyStream(self.keys())
    returns = evaluate(self.model, self.test_env, keys, self.config.num_test_episodes,
                       num_simulations=self.config.num_simulations,
                       seed=int(self.seeds.integers(2 ** 31)),
                       max_episode_steps=None if vector else self.config.max_episode_steps)
    return float(np.mean(returns))

  def close(self, terminate: bool = False) -> None:
    """Closes the vector environments; `terminate` kills their worker
    processes instead of waiting for them (a hung worker, a forced stop)."""
    for env in (self.env, self.test_env):
      if isinstance(env, gym.vector.AsyncVectorEnv):
        env.close(terminate=terminate)
      elif isinstance(env, gym.vector.VectorEnv):
        env.close()
