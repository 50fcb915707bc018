"""One mctx search compiled as one function, with no muax code: for comparing JAX versions.

Uses only jax and mctx (plain-JAX MLPs of the CartPole networks' size), so the
same file runs in a virtual environment with any JAX version, e.g.

  python3 -m venv /tmp/v && /tmp/v/bin/pip install "jax==0.5.3" "jaxlib==0.5.3" mctx
  /tmp/v/bin/python benchmarks/search_standalone.py

Options (environment variables): MUAX_UNROLL=1 applies muax's unrolled Threefry
lowering (see muax/runtime.py; JAX >= 0.4.35 layout), MUAX_ACTIVATION (below),
XLA_FLAGS as usual.
Prints one JSON line: microseconds per search (median of 5 rounds) for 1 and
64 roots, muzero at 50 simulations and gumbel at 50 and 8.
"""
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import mctx
import numpy as np

EMBEDDING, ACTIONS, SUPPORT = 8, 2, 21
# MUAX_ACTIVATION: relu (default), elu (jax.nn.elu, expm1) or elu_exp (muax.nn.elu's form).
ACTIVATIONS = {"relu": jax.nn.relu, "elu": jax.nn.elu,
               "elu_exp": lambda x: jnp.where(x > 0, x, jnp.exp(jnp.where(x > 0, 0., x)) - 1.)}


def _unroll_threefry():
  for name in ("jax._src.random.threefry2x32", "jax._src.prng"):
    try:
      module = __import__(name, fromlist=["x"])
    except ImportError:
      continue
    if hasattr(module, "_threefry2x32_lowering_rule"):
      from jax._src.interpreters import mlir
      mlir.register_lowering(module.threefry2x32_p, module._threefry2x32_lowering_rule,
                             platform="cpu")
      return True
  return False


def mlp_init(key, sizes):
  layers = []
  for a, b in zip(sizes[:-1], sizes[1:]):
    key, sub = jax.random.split(key)
    layers.append((jax.random.normal(sub, (a, b)) * 0.1, jnp.zeros(b)))
  return layers


def mlp(layers, x):
  for i, (w, b) in enumerate(layers):
    x = x @ w + b
    if i < len(layers) - 1:
      x = ACTIVATIONS[os.environ.get("MUAX_ACTIVATION", "relu")](x)
  return x


def make_params(key):
  return dict(r=mlp_init(key, [4, 64, EMBEDDING]), pv=mlp_init(key, [EMBEDDING, 64, SUPPORT]),
              pp=mlp_init(key, [EMBEDDING, 64, ACTIONS]),
              dr=mlp_init(key, [EMBEDDING + ACTIONS, 64, SUPPORT]),
              ds=mlp_init(key, [EMBEDDING + ACTIONS, 64, EMBEDDING]))


def predict(p, s):
  return mlp(p["pv"], s)[..., 0], mlp(p["pp"], s)


def root(p, obs):
  s = mlp(p["r"], obs)
  value, logits = predict(p, s)
  return mctx.RootFnOutput(prior_logits=logits, value=value, embedding=s)


def recurrent(p, key, action, s):
  del key
  x = jnp.concatenate([s, jax.nn.one_hot(action, ACTIONS)], -1)
  reward, next_s = mlp(p["dr"], x)[..., 0], mlp(p["ds"], x)
  value, logits = predict(p, next_s)
  out = mctx.RecurrentFnOutput(reward=reward, discount=jnp.full_like(reward, .997),
                               prior_logits=logits, value=value)
  return out, next_s


@functools.partial(jax.jit, static_argnums=(3, 4))
def search(p, key, obs, num_simulations, policy):
  if policy == "muzero":
    out = mctx.muzero_policy(p, key, root(p, obs), recurrent, num_simulations,
                             dirichlet_fraction=0.25)
  else:
    out = mctx.gumbel_muzero_policy(p, key, root(p, obs), recurrent, num_simulations)
  return out.action, out.action_weights


def microseconds(fn, calls, repeats=5):
  fn()
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      fn()
    times.append((time.perf_counter() - start) / calls)
  return round(1e6 * float(np.median(times)), 1)


def main():
  unrolled = _unroll_threefry() if os.environ.get("MUAX_UNROLL") == "1" else False
  params = make_params(jax.random.PRNGKey(0))
  key = jax.random.PRNGKey(1)
  result = {"bench": "search_standalone", "jax": jax.__version__,
            "mctx": getattr(mctx, "__version__", "?"), "unrolled_threefry": unrolled,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "activation": os.environ.get("MUAX_ACTIVATION", "relu")}
  for batch in (1, 64):
    obs = jnp.zeros((batch, 4))
    for policy, sims in (("muzero", 50), ("gumbel", 50), ("gumbel", 8)):
      result[f"{policy}{sims}_B{batch}_us"] = microseconds(
          lambda: jax.block_until_ready(search(params, key, obs, sims, policy)),
          100 if batch > 1 else 300)
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()
