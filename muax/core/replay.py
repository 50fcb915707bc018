"""Replay on the device: a bounded ring of steps as a pytree, pure functions.

The compiled loop records its environments in lockstep, so the buffer keeps
`[C, E, ...]` arrays: the last C steps of each of E environments, episodes back
to back as they were played (automatic resets). Targets are computed when a
window is sampled (`muax.core.targets`), from the K + n steps after its start,
so a step whose return needs later steps is never sampled before they exist.

A sampled window `[K]` starts at a uniformly drawn (environment, step), among
the starts whose K + n steps are all stored. Steps past the end of the window's
episode are treated as the host buffer treats them:
- after a termination: absorbing states (reward, value and return 0, `done`,
  a uniform policy, a random action, every action legal, the last real
  observation repeated; Sampled MuZero's candidates repeated too, the action a
  random one of them), as `muax.replay_store.absorb` pads;
- after a time limit: loss weight 0 (the host buffer never samples such
  windows; the steps belong to the next episode).
Either way `inside` is False there. Unlike `TrajectoryReplayBuffer`, which
draws trajectories first and then a window inside one, starts are uniform over
steps: a long episode is sampled in proportion to its length.

Prioritized replay (`init(..., prioritized=True)`, then `sample_prioritized`
and `update_priorities`) follows `muax.PrioritizedReplayBuffer`: a window
starting at an admissible (step, environment) i is drawn with probability
`p_i^alpha / sum_j p_j^alpha`, carries the importance-sampling weight
`(N P(i))^-beta / max_batch (N P(j))^-beta` (N admissible starts), new steps
get the largest priority so far, and an update sets `p_i = |error_i| +
epsilon`. Draws invert the running sum of the priorities (one `cumsum` over
the `C * E` ring and a binary search per window), not a sum tree: at the
sizes the loop keeps (a few hundred thousand steps) the scan is one pass of
a vector op, and a tree's sequential updates would serialise on the device.

Board games with symmetries (tic-tac-toe's 8, Connect Four's mirror) train on
each window in a random one of them (`symmetric`), as AlphaZero did with Go's:
a line self-play found in one orientation is learnt in all.

Everything here is traceable; `state` saves as a pytree of arrays.
"""
from typing import Callable, Dict, Optional, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from muax.core import targets as targets_lib

# What `add` takes for each step (and `init` for its example): `[T, E, ...]`.
STEP_FIELDS = ("obs", "a", "r", "v", "pi", "terminated", "truncated", "bootstrap_value")
OPTIONAL_FIELDS = ("mask", "candidates")


@chex.dataclass(frozen=True)
class DeviceReplay:
  """The buffer's whole state."""
  steps: Dict[str, chex.Array]  # field -> [C, E, ...]
  count: chex.Array  # [] int32 steps written per environment (may exceed C)
  priority: Optional[chex.Array] = None  # [C, E] float32 raw priorities (prioritized)
  max_priority: Optional[chex.Array] = None  # [] float32 the largest priority so far


def init(example: Dict[str, chex.Array], capacity: int, num_envs: int, *,
         prioritized: bool = False) -> DeviceReplay:
  """An empty buffer for steps like `example` (one step of one environment:
  the fields of `STEP_FIELDS`, `mask` where there are legal-action masks and
  `candidates` `[K, D]` where the actions are Sampled MuZero's, `a` then `[D]`);
  `prioritized` keeps a priority per step for `sample_prioritized`."""
  missing = [name for name in STEP_FIELDS if name not in example]
  unknown = [name for name in example if name not in STEP_FIELDS + OPTIONAL_FIELDS]
  if missing or unknown:
    raise ValueError(f"a step needs the fields {STEP_FIELDS} (and optionally "
                     f"{OPTIONAL_FIELDS}); missing {missing}, unknown {unknown}")
  if int(capacity) < 1 or int(num_envs) < 1:
    raise ValueError(f"capacity and num_envs must be positive, got {capacity}, {num_envs}")
  steps = {name: jnp.zeros((int(capacity), int(num_envs)) + jnp.shape(value),
                           jnp.asarray(value).dtype)
           for name, value in example.items()}
  if not prioritized:
    return DeviceReplay(steps=steps, count=jnp.zeros((), jnp.int32))
  return DeviceReplay(steps=steps, count=jnp.zeros((), jnp.int32),
                      priority=jnp.zeros((int(capacity), int(num_envs)), jnp.float32),
                      max_priority=jnp.ones((), jnp.float32))


def capacity(state: DeviceReplay) -> int:
  """C, the steps kept per environment (static)."""
  return state.steps["r"].shape[0]


def add(state: DeviceReplay, steps: Dict[str, chex.Array]) -> DeviceReplay:
  """Appends `[T, E, ...]` steps (T <= C); the oldest are overwritten."""
  size = capacity(state)
  length = steps["r"].shape[0]
  if length > size:
    raise ValueError(f"cannot add {length} steps at once to a buffer of {size}")
  rows = (state.count + jnp.arange(length)) % size
  stored = {name: field.at[rows].set(jnp.asarray(steps[name], field.dtype))
            for name, field in state.steps.items()}
  priority = (None if state.priority is None  # new steps: the largest priority so far
              else state.priority.at[rows].set(state.max_priority))
  return state.replace(steps=stored, count=state.count + length, priority=priority)


def can_sample(state: DeviceReplay, k_steps: int, n: int) -> chex.Array:
  """`[]` bool: at least one window of K steps has its K + n steps stored."""
  return state.count >= k_steps + n


def sample(state: DeviceReplay, key: chex.PRNGKey, batch_size: int, *, k_steps: int,
           n: int, discount: float, two_player: bool = False) -> Dict[str, chex.Array]:
  """A batch of `[B, K]` windows: `muax.Transition`'s fields by name (`weight`
  and `inside` included), so `Transition(**batch)` is an `update` batch. Call
  it only when `can_sample` (else the windows are garbage)."""
  size, span = capacity(state), k_steps + n
  num_envs = state.steps["r"].shape[1]
  key_env, key_start, key_absorb = jax.random.split(key, 3)
  oldest = jnp.maximum(state.count - size, 0)
  starts = oldest + jax.random.randint(key_start, (batch_size,), 0,
                                       jnp.maximum(state.count - span - oldest + 1, 1))
  env = jax.random.randint(key_env, (batch_size,), 0, num_envs)
  return _windows(state, starts, env, key_absorb, k_steps=k_steps, n=n, discount=discount,
                  two_player=two_player)


def sample_prioritized(state: DeviceReplay, key: chex.PRNGKey, batch_size: int, *,
                       k_steps: int, n: int, discount: float, alpha: float,
                       beta: chex.Array, two_player: bool = False
                       ) -> Tuple[Dict[str, chex.Array], chex.Array]:
  """`(batch, index)`: `sample`'s windows drawn by priority (see the module
  docstring), their importance-sampling weights multiplied into
  `batch['weight']`, and `index` `[B, 2]` (ring row, environment) of their
  first steps for `update_priorities`. `state` must be prioritized; call it
  only when `can_sample`."""
  if state.priority is None:
    raise ValueError("sample_prioritized needs a buffer made with init(..., prioritized=True)")
  size, span = capacity(state), k_steps + n
  num_envs = state.steps["r"].shape[1]
  key_start, key_absorb = jax.random.split(key)
  # The logical step each ring row holds: the newest t < count with t % C == row.
  logical = state.count - 1 - (state.count - 1 - jnp.arange(size)) % size
  admissible = (logical >= 0) & (logical <= state.count - span)  # [C]
  p = jnp.where(admissible[:, None], state.priority ** alpha, 0.).reshape(-1)  # [C * E]
  cdf = jnp.cumsum(p)
  picked = jnp.searchsorted(cdf, jax.random.uniform(key_start, (batch_size,)) * cdf[-1],
                            side="right")
  picked = jnp.minimum(picked, size * num_envs - 1)
  ring_row, env = picked // num_envs, picked % num_envs
  weight = (admissible.sum() * num_envs * p[picked] / cdf[-1]) ** -beta
  batch = _windows(state, logical[ring_row], env, key_absorb, k_steps=k_steps, n=n,
                   discount=discount, two_player=two_player)
  batch["weight"] = batch["weight"] * (weight / jnp.max(weight))[:, None].astype(jnp.float32)
  return batch, jnp.stack([ring_row, env], -1).astype(jnp.int32)


def update_priorities(state: DeviceReplay, index: chex.Array, errors: chex.Array, *,
                      epsilon: float = 1e-3) -> DeviceReplay:
  """Sets the priority of the steps `index` (`[B, 2]`, from
  `sample_prioritized`) to `|errors| + epsilon`; non-finite errors (a skipped
  update) leave theirs as they were."""
  rows, envs = index[:, 0], index[:, 1]
  new = jnp.abs(errors.astype(jnp.float32)) + epsilon
  finite = jnp.isfinite(new)
  new = jnp.where(finite, new, state.priority[rows, envs])
  return state.replace(
      priority=state.priority.at[rows, envs].set(new),
      max_priority=jnp.maximum(state.max_priority, jnp.max(jnp.where(finite, new, 0.))))


def symmetric(batch: Dict[str, chex.Array], key: chex.PRNGKey,
              symmetries: Sequence[Tuple[Callable, np.ndarray]]) -> Dict[str, chex.Array]:
  """Each window of a sampled `batch` seen in one of `symmetries` (`(transform,
  permutation [A])` pairs: observation `transform(obs)`, action `a` becomes
  `permutation[a]`), drawn uniformly per window: observations transformed,
  actions, policies and masks permuted alike; rewards, values, returns and
  weights unchanged (a symmetric game's are the same)."""
  which = jax.random.randint(key, (batch["a"].shape[0],), 0, len(symmetries))
  obs = jnp.stack([jax.vmap(jax.vmap(transform))(batch["obs"])
                   for transform, _ in symmetries])[which, jnp.arange(which.shape[0])]
  permutations = np.stack([p for _, p in symmetries]).astype(np.int32)  # [S, A], static
  permutation = jnp.asarray(permutations)[which]  # [B, A]
  # new action j was action inverse[j]
  inverse = jnp.asarray(np.argsort(permutations, axis=-1).astype(np.int32))[which][:, None]
  out = dict(batch, obs=obs,
             a=jnp.take_along_axis(permutation, batch["a"], axis=1).astype(batch["a"].dtype),
             pi=jnp.take_along_axis(batch["pi"], inverse, axis=2))
  if "mask" in batch:
    out["mask"] = jnp.take_along_axis(batch["mask"], inverse, axis=2)
  return out


def _windows(state: DeviceReplay, starts: chex.Array, env: chex.Array, key_absorb: chex.Array,
             *, k_steps: int, n: int, discount: float,
             two_player: bool) -> Dict[str, chex.Array]:
  """The `[B, K]` windows starting at logical steps `starts` of environments `env`."""
  size, span = capacity(state), k_steps + n
  rows = (starts[:, None] + jnp.arange(span)[None]) % size  # [B, K + n]
  window = {name: field[rows, env[:, None]] for name, field in state.steps.items()}
  out = jax.vmap(lambda r, v, term, trunc, boot: targets_lib.nstep_targets(
      r, v, term, trunc, boot, n=n, discount=discount, two_player=two_player))(
          window["r"], window["v"], window["terminated"], window["truncated"],
          window["bootstrap_value"])
  first = lambda x: x[:, :k_steps]  # noqa: E731
  window = {name: first(value) for name, value in window.items()}
  terminated = window["terminated"].astype(bool)
  ended = terminated | window["truncated"].astype(bool)
  # Step k is outside its window's episode when an episode end lies in steps 0..k-1.
  ends_before = jnp.cumsum(ended, axis=1) - ended
  inside = ends_before == 0
  last_real = jnp.minimum(jnp.arange(k_steps)[None], jnp.argmax(ended, axis=1)[:, None])
  last_real = jnp.where(inside, jnp.arange(k_steps)[None], last_real)
  first_is_term = jnp.take_along_axis(terminated, jnp.argmax(ended, axis=1)[:, None], 1)
  absorbing = ~inside & first_is_term
  num_actions = window["pi"].shape[-1]
  random_a = jax.random.randint(key_absorb, inside.shape, 0, num_actions)
  pick = lambda x: jnp.take_along_axis(  # noqa: E731
      x, last_real.reshape(last_real.shape + (1,) * (x.ndim - 2)), axis=1)
  zero = jnp.float32(0.)
  if "candidates" in window:  # continuous actions: a random one of the last candidates
    candidates = jnp.where(absorbing[..., None, None], pick(window["candidates"]),
                           window["candidates"])
    taken = jnp.take_along_axis(candidates, random_a[..., None, None], axis=2)[:, :, 0]
    action = jnp.where(absorbing[..., None], taken, window["a"])
  else:
    action = jnp.where(absorbing, random_a.astype(window["a"].dtype), window["a"])
  batch = dict(
      obs=pick(window["obs"]),
      a=action,
      r=jnp.where(absorbing, zero, window["r"].astype(jnp.float32)),
      done=jnp.where(absorbing, True, first(out.done)),
      Rn=jnp.where(absorbing, zero, first(out.Rn)),
      v=jnp.where(absorbing, zero, window["v"].astype(jnp.float32)),
      pi=jnp.where(absorbing[..., None], 1. / num_actions, window["pi"].astype(jnp.float32)),
      w=jnp.ones(inside.shape, jnp.float32),
      weight=jnp.where(inside | absorbing, 1., 0.).astype(jnp.float32),
      inside=inside)
  if "candidates" in window:
    batch["candidates"] = candidates.astype(jnp.float32)
  if "mask" in window:
    batch["mask"] = jnp.where(absorbing[..., None], True, window["mask"].astype(bool))
  return batch
