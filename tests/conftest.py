import atexit
import os
import shutil
import sys
import tempfile

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

# One compilation cache for the session: tests build many models with the
# same networks, whose programs are then compiled once, not once per model.
_CACHE = tempfile.mkdtemp(prefix="muax-test-jax-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import muax  # noqa: E402
from muax import nn  # noqa: E402


def make_mlp_model(policy="muzero", support_size=10, embedding=8, num_actions=2,
                   obs_dim=4, init=True, **kwargs):
  size = 2 * support_size + 1
  model = muax.MuZero(
      nn._init_representation_func(nn.Representation, embedding),
      nn._init_prediction_func(nn.Prediction, num_actions, size),
      nn._init_dynamic_func(nn.Dynamic, embedding, num_actions, size),
      policy=policy, support_size=support_size, **kwargs)
  if init:
    model.init(jax.random.PRNGKey(0), np.zeros((1, obs_dim), np.float32))
  return model


@pytest.fixture
def cartpole_model():
  return make_mlp_model()
