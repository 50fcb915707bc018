"""The compiled loop over two devices (two CPU devices, in a fresh process)."""
import os
import subprocess
import sys
import textwrap

import pytest

from muax.loop.jitted import CompiledConfig
from muax.loop.jitted import CompiledLoop

_TESTS = os.path.dirname(os.path.abspath(__file__))

# Runs the same loop on one device and on two: before learning starts the
# environments step exactly alike; afterwards the replicated parameters agree
# to float precision (XLA sums the batch's gradients across the devices).
_SCRIPT = textwrap.dedent("""
    import dataclasses
    import jax
    import numpy as np
    from conftest import make_mlp_model
    from jax_cartpole import CartPole
    from muax.loop.jitted import CompiledConfig, CompiledLoop

    assert len(jax.devices()) == 2, jax.devices()
    config = CompiledConfig(num_envs=8, num_simulations=4, k_steps=3, n=3, batch_size=16,
                            capacity=64, learning_starts=7, updates_per_iteration=2)
    model = make_mlp_model(policy="gumbel")
    one = CompiledLoop(model, CartPole(), config=config, devices=jax.devices()[:1])
    two = CompiledLoop(model, CartPole(), config=config)
    assert one.mesh is None and two.mesh is not None
    a, b = one.init(jax.random.PRNGKey(0)), two.init(jax.random.PRNGKey(0))
    assert len(b.obs.sharding.device_set) == 2 and len(a.obs.sharding.device_set) == 1
    a, _ = one.run(a, 6)  # no update yet: acting and stepping only
    b, _ = two.run(b, 6)
    assert int(b.train.count) == 0
    np.testing.assert_array_equal(np.asarray(a.obs), np.asarray(b.obs))
    np.testing.assert_array_equal(np.asarray(a.replay.steps["a"]),
                                  np.asarray(b.replay.steps["a"]))
    for _ in range(2):
      a, metrics_a = one.run(a, 6)
      b, metrics_b = two.run(b, 6)
    assert int(b.train.count) == int(a.train.count) > 0 and int(b.env_steps) == 8 * 18
    shards = b.replay.steps["obs"].sharding
    assert shards.spec == jax.sharding.PartitionSpec(None, "envs"), shards
    assert len(shards.device_set) == 2, shards
    assert b.train.params is not None and all(
        len(x.sharding.device_set) == 2 and x.sharding.is_fully_replicated
        for x in jax.tree_util.tree_leaves(b.train.params))
    assert np.isfinite(np.asarray(metrics_b["loss"])[-1])
    jax.tree_util.tree_map(
        lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4,
                                                atol=1e-5), a.train.params, b.train.params)
    returns = two.evaluate(b.train.params, jax.random.PRNGKey(1), 4, 50)
    assert returns.shape == (4,)
    # prioritized: the priorities are split with the replay, and stay so
    per = CompiledLoop(model, CartPole(),
                       config=dataclasses.replace(config, replay="prioritized"))
    c, _ = per.run(per.init(jax.random.PRNGKey(0)), 18)
    c, metrics_c = per.run(c, 6)
    assert c.replay.priority.sharding.spec == jax.sharding.PartitionSpec(None, "envs")
    assert np.isfinite(np.asarray(metrics_c["loss"])).all()
    assert (np.asarray(c.replay.priority)[:24] != 1.).any()
    print("two devices ok")
""")


def test_the_loop_splits_its_environments_across_two_devices():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join(
             [_TESTS, os.path.dirname(_TESTS), os.environ.get("PYTHONPATH", "")])}
  done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=_TESTS,
                        capture_output=True, text=True, timeout=900)
  assert done.returncode == 0 and "two devices ok" in done.stdout, done.stdout + done.stderr


def test_num_envs_must_split_evenly_across_the_devices():
  import jax  # noqa: PLC0415
  from conftest import make_mlp_model  # noqa: PLC0415
  from jax_cartpole import CartPole  # noqa: PLC0415
  devices = jax.devices()[:1] * 2  # two entries: the check needs no second device
  with pytest.raises(ValueError, match="num_envs=3 must be a multiple of the 2 devices"):
    CompiledLoop(make_mlp_model(policy="gumbel"), CartPole(),
                 config=CompiledConfig(num_envs=3), devices=devices)
