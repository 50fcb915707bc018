"""Ready-made Haiku networks and the factories that turn them into functions.

Hidden states are min-max normalised to [0, 1] (MuZero, Appendix G) so the
dynamics sees states on the scale the representation produces. The value,
reward and policy output layers start at zero: the untrained model predicts
value 0, reward 0 and a uniform prior, which keeps early search unbiased.
"""
import contextlib
import functools
import threading
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import haiku as hk
import jax
import jax.numpy as jnp

from muax import checks

__all__ = [
    "Dynamic", "Prediction", "Representation",
    "ResNetDynamic", "ResNetPrediction", "ResNetRepresentation", "ResidualBlock",
    "elu", "float_observations", "min_max_normalize", "min_max_normalize2d", "mlp",
    "observation_dtype",
    "resnet_networks",
]

_EPS = 1e-5
_SOURCE = threading.local()


def observation_dtype(obs: jax.Array) -> jnp.dtype:
  """The dtype `obs` arrived in, before `MuZero` cast it to float32.

  `MuZero` hands integer (e.g. uint8) and half-precision observations to the
  representation as float32 with the same values; a representation that
  treats them differently (the ResNet scales uint8 images to [0, 1]) asks here.
  """
  return getattr(_SOURCE, "dtype", None) or obs.dtype


@contextlib.contextmanager
def source_dtype(dtype: jax.typing.DTypeLike) -> Iterator[None]:
  """Within the block, `observation_dtype` reports `dtype` (used by `MuZero`)."""
  previous = getattr(_SOURCE, "dtype", None)
  _SOURCE.dtype = dtype
  try:
    yield
  finally:
    _SOURCE.dtype = previous


def min_max_normalize(s: jax.Array) -> jax.Array:
  """Scales each example's features `[B, D]` to [0, 1]."""
  low = jnp.min(s, axis=-1, keepdims=True)
  high = jnp.max(s, axis=-1, keepdims=True)
  return (s - low) / jnp.maximum(high - low, _EPS)


def min_max_normalize2d(s: jax.Array) -> jax.Array:
  """Scales each example's planes `[B, H, W, C]` to [0, 1] jointly."""
  low = jnp.min(s, axis=(1, 2, 3), keepdims=True)
  high = jnp.max(s, axis=(1, 2, 3), keepdims=True)
  return (s - low) / jnp.maximum(high - low, _EPS)


def elu(x: jax.Array) -> jax.Array:
  """ELU as `exp(x) - 1` below zero: XLA's CPU `expm1` (what `jax.nn.elu`
  uses) costs about a third of a batched search; the two differ by < 1e-7."""
  return jnp.where(x > 0, x, jnp.exp(jnp.where(x > 0, 0., x)) - 1.)


def encode_action(a: jax.typing.ArrayLike, num_actions: int,
                  dtype: jax.typing.DTypeLike = jnp.float32) -> jax.Array:
  """Integer actions `[B]` one-hot encoded; float vectors `[B, num_actions]`
  (continuous actions, one-hot or soft codes) passed through."""
  a = jnp.asarray(a)
  if a.ndim >= 2:
    if a.shape[-1] != num_actions:
      raise ValueError(f"a float action must be a vector [B, {num_actions}], got shape "
                       f"{a.shape}")
    return a.astype(dtype)
  return jax.nn.one_hot(a, num_actions, dtype=dtype)


def mlp(hidden: Sequence[int], out: int, zero_out: bool = False) -> hk.Sequential:
  """ELU layers of widths `hidden`, then a linear layer of width `out` (zero
  initialised with `zero_out`)."""
  layers = []
  for width in hidden:
    layers += [hk.Linear(width), elu]
  w_init = jnp.zeros if zero_out else None
  layers.append(hk.Linear(out, w_init=w_init))
  return hk.Sequential(layers)


class Representation(hk.Module):
  """Observation `[B, ...]` to hidden state `[B, embedding_dim]`."""

  def __init__(self, embedding_dim: int, hidden: Sequence[int] = (64,),
               name: Optional[str] = "representation"):
    super().__init__(name=name)
    self.embedding_dim = checks.positive_int("embedding_dim", embedding_dim)
    self.hidden = tuple(hidden)

  def __call__(self, obs: jax.Array) -> jax.Array:
    obs = jnp.reshape(obs, (obs.shape[0], -1)).astype(jnp.float32)
    return min_max_normalize(mlp(self.hidden, self.embedding_dim)(obs))


class Prediction(hk.Module):
  """Hidden state `[B, D]` to value logits `[B, full_support_size]` and
  policy logits `[B, num_actions]`."""

  def __init__(self, num_actions: int, full_support_size: int, hidden: Sequence[int] = (64,),
               name: Optional[str] = "prediction"):
    super().__init__(name=name)
    self.num_actions = checks.positive_int("num_actions", num_actions)
    self.full_support_size = checks.positive_int("full_support_size", full_support_size)
    self.hidden = tuple(hidden)

  def __call__(self, s: jax.Array) -> Tuple[jax.Array, jax.Array]:
    v = mlp(self.hidden, self.full_support_size, zero_out=True)(s)
    logits = mlp(self.hidden, self.num_actions, zero_out=True)(s)
    return v, logits


class Dynamic(hk.Module):
  """Hidden state `[B, D]` and action `[B]` to reward logits
  `[B, full_support_size]` and next hidden state `[B, D]`.

  The action may also be a float vector `[B, num_actions]` (a continuous
  action, or a one-hot or soft code such as Stochastic MuZero's chance
  outcome), used as given instead of one-hot encoded.
  """

  def __init__(self, embedding_dim: int, num_actions: int, full_support_size: int,
               hidden: Sequence[int] = (64,), name: Optional[str] = "dynamic"):
    super().__init__(name=name)
    self.embedding_dim = checks.positive_int("embedding_dim", embedding_dim)
    self.num_actions = checks.positive_int("num_actions", num_actions)
    self.full_support_size = checks.positive_int("full_support_size", full_support_size)
    self.hidden = tuple(hidden)

  def __call__(self, s: jax.Array, a: jax.Array) -> Tuple[jax.Array, jax.Array]:
    sa = jnp.concatenate([s, encode_action(a, self.num_actions, s.dtype)], axis=-1)
    r = mlp(self.hidden, self.full_support_size, zero_out=True)(sa)
    ns = min_max_normalize(mlp(self.hidden, self.embedding_dim)(sa))
    return r, ns


class ResidualBlock(hk.Module):
  """Two 3x3 convolutions with layer norm and a skip connection (NHWC)."""

  def __init__(self, channels: int, name: Optional[str] = None):
    super().__init__(name=name)
    self.channels = channels

  def __call__(self, x: jax.Array) -> jax.Array:
    y = hk.Conv2D(self.channels, 3, with_bias=False)(x)
    y = jax.nn.relu(hk.LayerNorm(-1, True, True)(y))
    y = hk.Conv2D(self.channels, 3, with_bias=False)(y)
    y = hk.LayerNorm(-1, True, True)(y)
    return jax.nn.relu(x + y)


class ResNetRepresentation(hk.Module):
  """Image observation `[B, H, W, C]` to hidden planes `[B, H', W', channels]`.

  A stem that downsamples, then `num_blocks` residual blocks. `downsample`
  picks the stem:

  * an integer `d`: one 3x3 convolution with stride `d` (1: no downsampling,
    e.g. MinAtar's 10x10 frames; the default 2 halves `H` and `W`);
  * `'muzero'`: the Atari stack of MuZero (Schrittwieser et al., 2020,
    Appendix F) at `channels` width: a stride-2 convolution to
    `channels // 2` planes, a residual block, a stride-2 convolution to
    `channels`, a residual block, 3x3 average pooling with stride 2, a
    residual block and a second pooling, so 96x96 frames become 6x6 planes.

  uint8 observations (even after `MuZero` cast them to float32, see
  `observation_dtype`) are scaled to [0, 1] first.
  """

  def __init__(self, channels: int = 32, num_blocks: int = 2, downsample: Union[int, str] = 2,
               name: Optional[str] = "representation"):
    super().__init__(name=name)
    self.channels = checks.positive_int("channels", channels)
    self.num_blocks = checks.positive_int("num_blocks", num_blocks, allow_zero=True)
    self.downsample = _check_downsample(downsample)

  def __call__(self, obs: jax.Array) -> jax.Array:
    if obs.ndim != 4:
      raise ValueError(f"ResNetRepresentation takes images [B, H, W, C] (NHWC), got an "
                       f"observation batch of shape {obs.shape}")
    x = obs.astype(jnp.float32)
    if observation_dtype(obs) == jnp.uint8:
      x = x / 255.
    if self.downsample == "muzero":
      x = _muzero_downsample(x, self.channels)
    else:
      x = jax.nn.relu(hk.Conv2D(self.channels, 3, stride=self.downsample)(x))
    for _ in range(self.num_blocks):
      x = ResidualBlock(self.channels)(x)
    return min_max_normalize2d(x)


class ResNetPrediction(hk.Module):
  """Hidden planes `[B, H, W, C]` to value and policy logits."""

  def __init__(self, num_actions: int, full_support_size: int, channels: int = 32,
               num_blocks: int = 1, head_hidden: Sequence[int] = (64,),
               name: Optional[str] = "prediction"):
    super().__init__(name=name)
    self.num_actions = checks.positive_int("num_actions", num_actions)
    self.full_support_size = checks.positive_int("full_support_size", full_support_size)
    self.channels, self.num_blocks, self.head_hidden = channels, num_blocks, head_hidden

  def __call__(self, s: jax.Array) -> Tuple[jax.Array, jax.Array]:
    x = s
    for _ in range(self.num_blocks):
      x = ResidualBlock(self.channels)(x)
    x = jnp.reshape(x, (x.shape[0], -1))
    v = mlp(self.head_hidden, self.full_support_size, zero_out=True)(x)
    logits = mlp(self.head_hidden, self.num_actions, zero_out=True)(x)
    return v, logits


class ResNetDynamic(hk.Module):
  """Hidden planes and action `[B]` (as constant planes) to reward logits and
  next hidden planes."""

  def __init__(self, num_actions: int, full_support_size: int, channels: int = 32,
               num_blocks: int = 1, head_hidden: Sequence[int] = (64,),
               name: Optional[str] = "dynamic"):
    super().__init__(name=name)
    self.num_actions = checks.positive_int("num_actions", num_actions)
    self.full_support_size = checks.positive_int("full_support_size", full_support_size)
    self.channels, self.num_blocks, self.head_hidden = channels, num_blocks, head_hidden

  def __call__(self, s: jax.Array, a: jax.Array) -> Tuple[jax.Array, jax.Array]:
    planes = jnp.broadcast_to(encode_action(a, self.num_actions, s.dtype)[:, None, None, :],
                              s.shape[:3] + (self.num_actions,))
    x = jax.nn.relu(hk.Conv2D(self.channels, 3)(jnp.concatenate([s, planes], -1)))
    for _ in range(self.num_blocks):
      x = ResidualBlock(self.channels)(x)
    ns = min_max_normalize2d(x)
    r = mlp(self.head_hidden, self.full_support_size, zero_out=True)(
        jnp.reshape(x, (x.shape[0], -1)))
    return r, ns


def _init_representation_func(representation_module, embedding_dim, **kwargs):
  """Returns `fn(obs) -> s` building `representation_module(embedding_dim)`."""
  checks.positive_int("embedding_dim", embedding_dim)

  def representation_func(obs):
    return representation_module(embedding_dim, **kwargs)(obs)
  return representation_func


def _init_prediction_func(prediction_module, num_actions, full_support_size, **kwargs):
  """Returns `fn(s) -> (value_logits, policy_logits)`."""
  checks.positive_int("num_actions", num_actions)
  checks.positive_int("full_support_size", full_support_size)

  def prediction_func(s):
    return prediction_module(num_actions, full_support_size, **kwargs)(s)
  return prediction_func


def _init_dynamic_func(dynamic_module, embedding_dim, num_actions, full_support_size,
                       **kwargs):
  """Returns `fn(s, a) -> (reward_logits, next_s)`."""
  checks.positive_int("embedding_dim", embedding_dim)
  checks.positive_int("num_actions", num_actions)
  checks.positive_int("full_support_size", full_support_size)

  def dynamic_func(s, a):
    return dynamic_module(embedding_dim, num_actions, full_support_size, **kwargs)(s, a)
  return dynamic_func


def _init_resnet_representation_func(representation_module=ResNetRepresentation,
                                     channels=32, **kwargs):
  """Returns `fn(obs[B, H, W, C]) -> s[B, H', W', channels]`."""
  def representation_func(obs):
    return representation_module(channels=channels, **kwargs)(obs)
  return representation_func


def _init_resnet_prediction_func(prediction_module=ResNetPrediction, num_actions=None,
                                 full_support_size=None, **kwargs):
  """Returns `fn(s) -> (value_logits, policy_logits)` for hidden planes."""
  checks.positive_int("num_actions", num_actions)
  checks.positive_int("full_support_size", full_support_size)

  def prediction_func(s):
    return prediction_module(num_actions, full_support_size, **kwargs)(s)
  return prediction_func


def _init_resnet_dynamic_func(dynamic_module=ResNetDynamic, num_actions=None,
                              full_support_size=None, **kwargs):
  """Returns `fn(s, a) -> (reward_logits, next_s)` for hidden planes."""
  checks.positive_int("num_actions", num_actions)
  checks.positive_int("full_support_size", full_support_size)

  def dynamic_func(s, a):
    return dynamic_module(num_actions, full_support_size, **kwargs)(s, a)
  return dynamic_func


def resnet_networks(num_actions: int, support_size: int, *, channels: int = 32,
                    num_blocks: int = 2, downsample: Union[int, str] = 1,
                    prediction_blocks: int = 1, dynamic_blocks: int = 1,
                    head_hidden: Sequence[int] = (64,)) -> Tuple[Callable, Callable, Callable]:
  """The three functions `muax.MuZero` takes, as residual conv nets for images.

  Observations are NHWC images `[B, H, W, C]`, best stored as uint8 (scaled to
  [0, 1] inside); hidden states are planes `[B, H', W', channels]`, and the
  dynamics sees the action as `num_actions` constant one-hot planes.

  ```python
  model = muax.MuZero(*nn.resnet_networks(6, 10, channels=32), support_size=10)
  ```

  Args:
    num_actions: number of discrete actions A.
    support_size: S of the model (value and reward logits are `2 S + 1` wide).
    channels: planes of the hidden state.
    num_blocks: residual blocks of the representation after the stem.
    downsample: the representation's stem (see `ResNetRepresentation`): 1 for
      small frames such as MinAtar's 10x10 (the default), `'muzero'` for 96x96
      Atari frames (to 6x6), another integer for one strided convolution.
    prediction_blocks: residual blocks of the prediction network.
    dynamic_blocks: residual blocks of the dynamics network.
    head_hidden: hidden widths of the value, reward and policy heads.

  Returns:
    `(representation_fn, prediction_fn, dynamic_fn)`.

  Raises:
    ValueError: a count that is not a positive integer (`num_blocks` and the
      block counts may be 0), an unknown `downsample`.
  """
  num_actions = checks.positive_int("num_actions", num_actions)
  full_support_size = 2 * checks.positive_int("support_size", support_size) + 1
  checks.positive_int("channels", channels)
  for name, value in (("num_blocks", num_blocks), ("prediction_blocks", prediction_blocks),
                      ("dynamic_blocks", dynamic_blocks)):
    checks.positive_int(name, value, allow_zero=True)
  _check_downsample(downsample)
  head_hidden = tuple(head_hidden)
  return (
      _init_resnet_representation_func(channels=channels, num_blocks=num_blocks,
                                       downsample=downsample),
      _init_resnet_prediction_func(num_actions=num_actions,
                                   full_support_size=full_support_size, channels=channels,
                                   num_blocks=prediction_blocks, head_hidden=head_hidden),
      _init_resnet_dynamic_func(num_actions=num_actions, full_support_size=full_support_size,
                                channels=channels, num_blocks=dynamic_blocks,
                                head_hidden=head_hidden))


def _check_downsample(downsample):
  if downsample == "muzero":
    return downsample
  return checks.integer("downsample", downsample, what="a stride >= 1 (1: none) or 'muzero' "
                        "(96x96 Atari frames to 6x6)")


def _muzero_downsample(x, channels):
  """MuZero's Atari stem: resolution / 16 (96x96 -> 6x6) at `channels` planes."""
  half = max(channels // 2, 1)
  x = jax.nn.relu(hk.Conv2D(half, 3, stride=2)(x))
  x = ResidualBlock(half)(x)
  x = jax.nn.relu(hk.Conv2D(channels, 3, stride=2)(x))
  x = ResidualBlock(channels)(x)
  x = hk.avg_pool(x, window_shape=(1, 3, 3, 1), strides=(1, 2, 2, 1), padding="SAME")
  x = ResidualBlock(channels)(x)
  return hk.avg_pool(x, window_shape=(1, 3, 3, 1), strides=(1, 2, 2, 1), padding="SAME")


def float_observations(representation_fn: Callable) -> Callable:
  """Wraps `representation_fn` to see integer or half-precision observations as
  float32 (same values), so a uint8 replay buffer trains the float32 networks.

  `nn.observation_dtype` still reports the original dtype inside the call (the
  ResNet representation scales uint8 images to [0, 1] by it). Under `jit` the
  cast is traced once per input dtype, never per call.
  """

  @functools.wraps(representation_fn)
  def fn(obs):
    obs = jnp.asarray(obs)
    if obs.dtype.kind in "biu" or (obs.dtype.kind == "f" and obs.dtype.itemsize < 4):
      with source_dtype(obs.dtype):
        return representation_fn(obs.astype(jnp.float32))
    return representation_fn(obs)

  return fn
