"""Greedy evaluation of a model."""
from typing import Any, Optional, Union

import jax
import numpy as np

from muax import checks
from muax.acting import KeyStream, check_env
from muax.loop.evaluation import evaluate

__all__ = ["test"]


def test(model: Any, env: Any, key: Union[int, jax.Array], num_simulations: int,
         num_test_episodes: int = 10, random_seed: Optional[int] = None,
         max_episode_steps: Optional[int] = None) -> float:
  """Mean undiscounted return of greedy (`temperature=0`) episodes.

  Args:
    model: an initialised `muax.MuZero`.
    env: a gymnasium environment with a discrete action space.
    key: a JAX PRNG key.
    num_simulations: search simulations per decision.
    num_test_episodes: episodes to average.
    random_seed: seeds the first reset; later resets continue its stream, so
      every episode starts from a different state.
    max_episode_steps: cap for environments without a time limit.
  """
  check_env(env, model=model)
  checks.positive_int("num_test_episodes", num_test_episodes, echo_name=False)
  checks.positive_int("max_episode_steps", max_episode_steps, allow_none=True)
  if random_seed is not None:
    checks.seed("random_seed", random_seed)
  keys = KeyStream(jax.random.PRNGKey(key) if isinstance(key, int) else key)
  return float(np.mean(evaluate(model, env, keys, num_test_episodes,
                                num_simulations=num_simulations, seed=random_seed,
                                max_episode_steps=max_episode_steps)))
