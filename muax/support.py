"""Categorical value and reward targets on the h-transformed integer support.

MuZero (Schrittwieser et al., 2020, Appendix F) predicts values and rewards as
categorical distributions over the integers `-S..S`, after squashing the scalar
with the invertible transform of Pohlen et al. (2018):

  h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x,  eps = 1e-3.

A scalar becomes a "two-hot" target: its transformed value `h(x)` lies between
two neighbouring integers and the probability mass is split between them in
proportion to the distance, so the expectation of the target is exactly h(x).
"""

import jax
import jax.numpy as jnp

from muax import checks

EPS = 1e-3


def h(x: jax.typing.ArrayLike) -> jax.Array:
  """Squashes scalars: `h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x`."""
  return jnp.sign(x) * (jnp.sqrt(jnp.abs(x) + 1.) - 1.) + EPS * x


def h_inv(y: jax.typing.ArrayLike) -> jax.Array:
  """Inverse of `h`, in closed form (solve the quadratic in sqrt(|x| + 1))."""
  root = (jnp.sqrt(1. + 4. * EPS * (jnp.abs(y) + 1. + EPS)) - 1.) / (2. * EPS)
  return jnp.sign(y) * (jnp.square(root) - 1.)


def scalar_to_support(x: jax.typing.ArrayLike, support_size: int) -> jax.Array:
  """Two-hot encodes `h(x)` over the integers `-support_size..support_size`.

  Args:
    x: scalars of any shape `[...]`.
    support_size: S; the support has `2S + 1` atoms.

  Returns:
    probabilities `[..., 2S + 1]` whose expectation over the atoms is
    `clip(h(x), -S, S)`.
  """
  support_size = checks.positive_int("support_size", support_size)
  y = jnp.clip(h(jnp.asarray(x, jnp.float32)), -support_size, support_size)
  low = jnp.floor(y)
  upper_weight = y - low
  low_index = (low + support_size).astype(jnp.int32)
  size = 2 * support_size + 1
  # At y == S the upper index is out of range; one_hot gives zeros there and
  # the upper weight is 0 anyway.
  return ((1. - upper_weight)[..., None] * jax.nn.one_hot(low_index, size)
          + upper_weight[..., None] * jax.nn.one_hot(low_index + 1, size))


def support_to_scalar(probs: jax.typing.ArrayLike, support_size: int) -> jax.Array:
  """Expected value of a categorical over the support, mapped back by `h_inv`.

  Args:
    probs: probabilities `[..., 2S + 1]` (apply a softmax to logits first).
    support_size: S.

  Returns:
    scalars `[...]`.
  """
  support_size = checks.positive_int("support_size", support_size)
  probs = jnp.asarray(probs)
  if probs.ndim < 1 or probs.shape[-1] != 2 * support_size + 1:
    raise ValueError(f"probs has shape {probs.shape}; support_size={support_size} needs a "
                     f"last axis of 2*support_size+1 = {2 * support_size + 1}")
  atoms = jnp.arange(-support_size, support_size + 1, dtype=jnp.float32)
  return h_inv(jnp.sum(probs * atoms, axis=-1))


def logits_to_scalar(logits: jax.typing.ArrayLike, support_size: int) -> jax.Array:
  """`support_to_scalar(softmax(logits))`: the scalar a network head predicts."""
  return support_to_scalar(jax.nn.softmax(logits, axis=-1), support_size)
