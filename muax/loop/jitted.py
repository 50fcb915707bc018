"""The whole loop as one compiled program, for environments written in JAX.

For an environment with gymnax's interface (`reset_env(key, params) -> (obs,
state)`, `step_env(key, state, action, params) -> (obs, state, reward, done,
info)`), acting (the model's search), stepping E environments (`vmap`), the
automatic reset, replay (`muax.core.replay`) and learning (the model's pure
`update`) run inside one `jax.jit` over `lax.scan`. The host calls `run` in
chunks of iterations and reads back the metrics between them.

An episode whose `done` comes with `state.time >= params.max_steps_in_episode`
was cut by the time limit: its n-step returns are bootstrapped from the greedy
search value of the observation the limit cut off, as the host loop does.
gymnax (>= 1.0) environments, whose `step_env` reports terminations only, are
wrapped in `muax.jax_envs.GymnaxEnv`, which adds their clock to `done`.
"""
import dataclasses
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import chex
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from muax import jax_envs
from muax import prioritized_replay
from muax.core import replay as replay_lib
from muax.core.types import SearchBudget
from muax.core.types import SearchConfig
from muax.core.types import TrainState
from muax.transition import Transition

__all__ = ["CompiledConfig", "CompiledLoop", "LoopState", "POLICIES", "temperature_at",
           "temperature_schedule", "time_limit_reached"]


@dataclasses.dataclass(frozen=True)
class CompiledConfig:
  """What shapes the compiled program (static)."""
  num_envs: int = 16
  num_simulations: int = 8
  k_steps: int = 5
  n: int = 10
  batch_size: int = 64
  # Updates per iteration (one iteration steps every environment once): the
  # replay ratio is `updates_per_iteration / num_envs` updates per env step.
  updates_per_iteration: int = 1
  capacity: int = 2_000  # steps kept per environment
  learning_starts: int = 64  # steps per environment before the first update
  # The acting temperature (policy 'muzero': visit counts N^(1/T); gumbel's
  # choice does not use it): a number, or a schedule of `(updates, T)` pairs,
  # T from that many updates on, e.g. `temperature_schedule(20_000)`.
  temperature: Union[float, Tuple[Tuple[int, float], ...]] = 1.
  discount: float = 0.997
  # Replay: 'uniform' over stored steps, or 'prioritized' by value error
  # (`muax.core.replay.sample_prioritized`, as `muax.PrioritizedReplayBuffer`):
  # alpha, beta annealed linearly to 1 over `priority_beta_steps` updates, epsilon.
  replay: str = "uniform"
  priority_alpha: float = 0.6
  priority_beta: float = 0.4
  priority_beta_steps: int = 10_000
  priority_epsilon: float = 1e-3
  # Where the env has `symmetries` (`muax.jax_envs.board_symmetries`: tic-tac-toe,
  # Connect Four), each sampled window is trained on in one of them, drawn uniformly.
  symmetries: bool = True

  def __post_init__(self):
    if self.replay not in ("uniform", "prioritized"):
      raise ValueError(f"replay must be 'uniform' or 'prioritized', got {self.replay!r}")
    prioritized_replay.check_per_settings(self.priority_alpha, self.priority_beta, 1.,
                                          self.priority_beta_steps, self.priority_epsilon)
    if not isinstance(self.temperature, (int, float)):
      schedule = tuple((int(n), float(t)) for n, t in self.temperature)
      if not schedule or schedule[0][0] != 0 or any(
          a[0] >= b[0] for a, b in zip(schedule, schedule[1:])):
        raise ValueError("temperature must be a number or (updates, temperature) pairs "
                         f"starting at 0 updates, in increasing order, got {self.temperature!r}")
      object.__setattr__(self, "temperature", schedule)


def temperature_schedule(updates: int) -> Tuple[Tuple[int, float], ...]:
  """The host loop's default (`muax.train.default_temperature_fn`) as a
  schedule over `updates` updates: 1 for the first half, 0.5 to three
  quarters, then 0.25."""
  return ((0, 1.), (max(1, updates // 2), .5), (max(2, 3 * updates // 4), .25))


def temperature_at(temperature: Any, updates: chex.Array) -> chex.Array:
  """The temperature of a `CompiledConfig.temperature` after `updates` updates."""
  if isinstance(temperature, (int, float)):
    return jnp.float32(temperature)
  starts = jnp.array([n for n, _ in temperature])
  values = jnp.array([t for _, t in temperature], jnp.float32)
  return values[jnp.searchsorted(starts, updates, side="right") - 1]


@chex.dataclass(frozen=True, mappable_dataclass=False)
class LoopState:
  """Everything the compiled loop carries from one iteration to the next."""
  train: TrainState
  env_state: Any  # [E] the environments' states
  obs: chex.Array  # [E, ...] the observations to act in
  replay: replay_lib.DeviceReplay
  key: chex.Array  # [2] uint32
  episode_return: chex.Array  # [E] return of each environment's running episode
  env_steps: chex.Array  # [] int32 steps taken, all environments together


time_limit_reached = jax_envs.time_limit_of  # the default `time_limit`
# The policies whose search the loop runs ('sampled' for continuous actions, e.g.
# gymnax's Pendulum-v1).
POLICIES = ("muzero", "gumbel", "stochastic", "sampled")


class CompiledLoop:
  """Acting, replay and learning for a JAX environment in one program.

  Args:
    model: an initialised `muax.MuZero` (policy 'muzero' or 'gumbel'),
      `muax.stochastic.StochasticMuZero` (its chance codes learnt from the environment's
      own randomness, e.g. 2048's new tiles) or `muax.sampled.SampledMuZero`
      (continuous actions `[D]`; replay keeps each step's candidates): its
      variant's search and its pure updates are used, never its state.
    env: an environment with gymnax's `reset_env` / `step_env`, `done`
      including the time limit; a gymnax `Environment` (it has
      `is_truncated`) is wrapped in `muax.jax_envs.GymnaxEnv` for that.
    env_params: the environment's parameters (None: `env.default_params`).
    config: a `CompiledConfig`.
    time_limit: `(state, params) -> [] bool`, True where a `done` is a time
      limit rather than a termination (`time_limit_reached` by default).
    test_env: the environment `evaluate` plays (None: `env`), e.g. one
      without the training env's random openings; same parameters.
    devices: the devices to run on (None: `jax.local_devices()`). With more
      than one, the environments, their observations and the replay are
      split across them along the environment axis (`num_envs` must be a
      multiple of their number) and the training state is replicated: each
      device acts and steps its share, and XLA reduces the gradients of the
      batch across them.

  Board games (pgx, through `muax.jax_envs`) add, as methods of `env`:
  `legal_actions(state) -> [A] bool` (the search and the policy target are
  restricted to them; replay keeps them as `mask`) and `current_player(state)
  -> [] int` (two players: train the model with `two_player=True`; `evaluate`
  then plays against a uniformly random legal opponent, half the games from
  each seat). An env's own `time_limit(state, params)` replaces the default;
  its `symmetries` (`muax.jax_envs.board_symmetries`) are learnt from, and its
  `action_space` (a gymnasium space) is checked against the model's.
  """

  def __init__(self, model: Any, env: Any, env_params: Any = None,
               config: CompiledConfig = CompiledConfig(), *,
               time_limit: Callable = time_limit_reached, test_env: Any = None,
               devices: Optional[Sequence[Any]] = None):
    act = _act_of(model.variant)
    if act is None or model.policy not in POLICIES:
      raise ValueError(f"the compiled loop runs policy {', '.join(map(repr, POLICIES))}, "
                       f"not policy={model.policy!r}")
    if model.reanalyze is not None:
      raise ValueError("the compiled loop does not reanalyse yet: call "
                       "model.set_reanalyze(None) first")
    if model.train_state is None:
      raise RuntimeError("call model.init(rng_key, sample_input) before building the loop")
    env = _with_clock(env, env_params)
    test_env = None if test_env is None else _with_clock(test_env, env_params)
    space = getattr(env, "action_space", None)  # a gymnasium space, where the env says
    if isinstance(space, gym.spaces.Space):  # (gymnax's own is a method of params)
      model.variant.check_action_space(space, model.num_actions,
                                       "the environment's action space")
    self.model, self.env, self.config = model, env, config
    devices = list(jax.local_devices() if devices is None else devices)
    if config.num_envs % len(devices):
      raise ValueError(f"num_envs={config.num_envs} must be a multiple of the {len(devices)} "
                       "devices the environments are split across (or pass devices=)")
    self.mesh = (jax.sharding.Mesh(np.array(devices), ("envs",)) if len(devices) > 1
                 else None)
    self.env_params = env.default_params if env_params is None else env_params
    # What the compiled functions read: frozen, and free of the (mutable) model.
    self._legal = getattr(env, "legal_actions", None)
    program = _Program(search=act, update=model.update_functions()[0],
                       env=env, env_params=self.env_params, num_actions=model.num_actions,
                       two_player=model.two_player, config=config,
                       time_limit=getattr(env, "time_limit", time_limit),
                       budget=SearchBudget(num_simulations=config.num_simulations),
                       legal_actions=self._legal,
                       # one-player pgx games (2048) have a current player too
                       current_player=(getattr(env, "current_player", None)
                                       if model.two_player else None),
                       test_env=env if test_env is None else test_env, mesh=self.mesh,
                       symmetries=(tuple(getattr(env, "symmetries", ()))
                                   if config.symmetries else ()))
    self._program = program
    self.run = jax.jit(program.run, static_argnums=(1,), donate_argnums=(0,))
    """`run(state, iterations) -> (state, metrics[iterations])`: `iterations`
    steps of every environment, learning as configured (`state` is donated)."""
    self.evaluate = jax.jit(program.evaluate, static_argnums=(2, 3))
    """`evaluate(params, key, num_envs, max_steps) -> [num_envs]` undiscounted
    returns of greedy episodes, all environments stepped together."""

  # -- state ----------------------------------------------------------------

  def init(self, key: chex.PRNGKey, train_state: Optional[TrainState] = None) -> LoopState:
    """A fresh loop: E reset environments, an empty replay, the model's (or
    `train_state`'s) training state."""
    key, reset_key = jax.random.split(key)
    obs, env_state = jax.vmap(self.env.reset_env, (0, None))(
        jax.random.split(reset_key, self.config.num_envs), self.env_params)
    program = self._program
    # One step's fields as the search gives them (actions [D] and candidates for
    # Sampled MuZero).
    action, pi, _, extras = jax.eval_shape(
        lambda params, obs: program.search(
            params, key, obs, jnp.zeros((1, self.model.num_actions), jnp.float32),
            program._settings(0.), program.budget),
        self.model.train_state.params, obs[:1])
    example = dict(obs=obs[0], a=jnp.zeros(action.shape[1:], program.action_dtype(action)),
                   r=jnp.zeros(()), v=jnp.zeros(()), pi=jnp.zeros(pi.shape[1:]),
                   terminated=jnp.zeros((), bool), truncated=jnp.zeros((), bool),
                   bootstrap_value=jnp.zeros(()),
                   **{name: jnp.zeros(x.shape[1:], x.dtype) for name, x in extras.items()})
    if self._legal is not None:
      example["mask"] = jnp.zeros((self.model.num_actions,), bool)
    train = self.model.train_state if train_state is None else train_state
    return self.place(LoopState(
        train=jax.tree_util.tree_map(jnp.array, train), env_state=env_state, obs=obs,
        replay=replay_lib.init(example, self.config.capacity, self.config.num_envs,
                               prioritized=self.config.replay == "prioritized"),
        key=jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
        else key,
        episode_return=jnp.zeros((self.config.num_envs,)), env_steps=jnp.zeros((), jnp.int32)))

  def place(self, state: LoopState) -> LoopState:
    """`state` on the loop's devices: split along the environment axis where
    there are several (as `init` gives it; e.g. for a loaded state)."""
    if self.mesh is None:
      return state
    return jax.device_put(state, _shardings(state, self.mesh))


def _with_clock(env: Any, env_params: Any) -> Any:
  """A bare gymnax (>= 1.0) `Environment`, whose `step_env` reports
  terminations only, wrapped so that `done` includes its time limit."""
  if hasattr(env, "is_truncated") and not hasattr(env, "time_limit"):
    return jax_envs.GymnaxEnv(env, env_params)
  return env


def _act_of(variant: Any) -> Optional[Callable]:
  """The variant's acting search `(action, pi, value, extras)` (`Variant.act`, or
  its `search` with no extras), None when it has neither."""
  if variant.act is not None:
    return variant.act
  if variant.search is None:
    return None
  return lambda *args: tuple(variant.search(*args)) + ({},)


def _shardings(state: LoopState, mesh: Any) -> LoopState:
  """The placement of every leaf of `state` on `mesh`: environment axes split
  (axis 0 of the environments' arrays, axis 1 of the replay's `[C, E, ...]`),
  everything else (training state, keys, counters) replicated."""
  named = lambda *spec: jax.sharding.NamedSharding(  # noqa: E731
      mesh, jax.sharding.PartitionSpec(*spec))
  envs = lambda tree: jax.tree_util.tree_map(  # noqa: E731
      lambda x: named("envs") if jnp.ndim(x) else named(), tree)
  return state.replace(
      train=jax.tree_util.tree_map(lambda _: named(), state.train),
      env_state=envs(state.env_state), obs=named("envs"),
      replay=state.replay.replace(
          steps=jax.tree_util.tree_map(lambda _: named(None, "envs"), state.replay.steps),
          count=named(),
          priority=None if state.replay.priority is None else named(None, "envs"),
          max_priority=None if state.replay.max_priority is None else named()),
      key=named(), episode_return=named("envs"), env_steps=named())


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity (jit caches on it)
class _Program:
  """The compiled loop's pure functions and the static values they read."""
  search: Callable  # the variant's traced search
  update: Callable  # the model's pure `update(state, batch)`
  env: Any
  env_params: Any
  num_actions: int
  two_player: bool
  config: CompiledConfig
  time_limit: Callable
  budget: SearchBudget
  legal_actions: Optional[Callable] = None  # (env state) -> [A] bool
  current_player: Optional[Callable] = None  # (env state) -> [] int
  test_env: Any = None  # the environment `evaluate` plays
  mesh: Any = None  # several devices: the environments' split (see `_shardings`)
  symmetries: Tuple = ()  # ((obs transform, action permutation [A]), ...), identity first

  def _invalid(self, env_state: Any, num_envs: int) -> chex.Array:
    """`[E, A]` float32, 1 = an illegal action (none marked where a state has no
    legal action: a finished game the search never decides in)."""
    if self.legal_actions is None:
      return jnp.zeros((num_envs, self.num_actions), jnp.float32)
    legal = jax.vmap(self.legal_actions)(env_state)
    legal = legal | ~legal.any(axis=-1, keepdims=True)
    return (~legal).astype(jnp.float32)

  @staticmethod
  def action_dtype(action: Any) -> Any:
    """int32 for discrete actions `[E]`, float32 for continuous ones `[E, D]`."""
    return jnp.int32 if action.ndim == 1 else jnp.float32

  def _settings(self, temperature) -> SearchConfig:
    return SearchConfig.of(jnp.float32(temperature), jnp.float32(0.25), jnp.float32(0.3),
                           jnp.float32(1.25), jnp.float32(19652.), jnp.float32(1.))

  def run(self, state: LoopState, iterations: int) -> Tuple[LoopState, Dict[str, chex.Array]]:
    """`iterations` steps of every environment, learning as configured;
    returns the new state and per-iteration metrics `[iterations]`."""
    state, metrics = jax.lax.scan(lambda s, _: self._iteration(s), state, None,
                                  length=iterations)
    if self.mesh is not None:  # leave it placed as it came (no recompiling next call)
      state = jax.lax.with_sharding_constraint(state, _shardings(state, self.mesh))
    return state, metrics

  def _iteration(self, state: LoopState) -> Tuple[LoopState, Dict[str, chex.Array]]:
    cfg, num_envs = self.config, self.config.num_envs
    key, k_act, k_step, k_boot, k_reset, k_learn = jax.random.split(state.key, 6)
    params = state.train.params
    mask = self._invalid(state.env_state, num_envs)
    action, pi, value, extras = self.search(params, k_act, state.obs, mask,
                                     self._settings(temperature_at(cfg.temperature,
                                                                   state.train.count)),
                                     self.budget)
    next_obs, next_state, reward, done, _ = jax.vmap(
        self.env.step_env, (0, 0, 0, None))(jax.random.split(k_step, num_envs),
                                            state.env_state, action, self.env_params)
    truncated = done & jax.vmap(self.time_limit, (0, None))(next_state, self.env_params)
    terminated = done & ~truncated
    bootstrap = jax.lax.cond(
        truncated.any(),
        lambda: self.search(params, k_boot, next_obs, self._invalid(next_state, num_envs),
                            self._settings(0.), self.budget)[2],
        lambda: jnp.zeros((num_envs,), jnp.float32))
    reset_obs, reset_state = jax.vmap(self.env.reset_env, (0, None))(
        jax.random.split(k_reset, num_envs), self.env_params)
    pick = lambda new, old: jnp.where(  # noqa: E731
        done.reshape(done.shape + (1,) * (new.ndim - 1)), new, old)
    steps = dict(obs=state.obs, a=action.astype(self.action_dtype(action)),
                 r=reward.astype(jnp.float32), v=value, pi=pi, terminated=terminated,
                 truncated=truncated, bootstrap_value=bootstrap, **extras)
    if self.legal_actions is not None:
      steps["mask"] = mask == 0.
    replay = replay_lib.add(state.replay, jax.tree_util.tree_map(lambda x: x[None], steps))
    train, replay, loss = self._learn(state.train, replay, k_learn)
    episode_return = state.episode_return + reward
    metrics = dict(loss=loss, episodes=done.sum(),
                   return_sum=jnp.where(done, episode_return, 0.).sum())
    return LoopState(
        train=train, env_state=jax.tree_util.tree_map(pick, reset_state, next_state),
        obs=pick(reset_obs, next_obs), replay=replay, key=key,
        episode_return=jnp.where(done, 0., episode_return),
        env_steps=state.env_steps + num_envs), metrics

  def _learn(self, train: TrainState, replay: replay_lib.DeviceReplay,
             key: chex.PRNGKey) -> Tuple[TrainState, replay_lib.DeviceReplay, chex.Array]:
    """`updates_per_iteration` updates once the replay holds enough steps;
    returns the training state, the replay (its priorities updated where it
    is prioritized) and the mean loss (NaN when nothing was learned)."""
    cfg = self.config
    ready = replay.count >= max(cfg.learning_starts, cfg.k_steps + cfg.n)
    targets = dict(k_steps=cfg.k_steps, n=cfg.n, discount=cfg.discount,
                   two_player=self.two_player)

    def one(carry, key):
      train, replay = carry
      if replay.priority is None:
        batch = replay_lib.sample(replay, key, cfg.batch_size, **targets)
      else:
        progress = jnp.minimum(train.count / cfg.priority_beta_steps, 1.)
        batch, index = replay_lib.sample_prioritized(
            replay, key, cfg.batch_size, alpha=cfg.priority_alpha,
            beta=cfg.priority_beta + (1. - cfg.priority_beta) * progress, **targets)
      if self.symmetries:
        batch = replay_lib.symmetric(batch, jax.random.fold_in(key, 1), self.symmetries)
      train, out = self.update(train, Transition(**batch))
      if replay.priority is not None:
        replay = replay_lib.update_priorities(replay, index, out.priority,
                                              epsilon=cfg.priority_epsilon)
      return (train, replay), out.metrics["loss"]

    def learn(carry):
      carry, losses = jax.lax.scan(one, carry, jax.random.split(key, cfg.updates_per_iteration))
      return carry + (losses.mean(),)

    return jax.lax.cond(ready, learn, lambda c: c + (jnp.float32(jnp.nan),), (train, replay))

  def evaluate(self, params: Any, key: chex.PRNGKey, num_envs: int,
               max_steps: int) -> chex.Array:
    """`[num_envs]` undiscounted returns of greedy episodes (at most
    `max_steps` steps each), all environments stepped together; in two-player
    games the agent's score against a random legal opponent (+1 a win), the
    agent moving first in the even-numbered games."""
    k_reset, key = jax.random.split(key)
    obs, env_state = jax.vmap(self.test_env.reset_env, (0, None))(
        jax.random.split(k_reset, num_envs), self.env_params)
    # Two players: the agent moves first in the even-numbered games (players are
    # numbered by the environment, which may pick who starts at random).
    agent_player = jnp.zeros((num_envs,), jnp.int32)
    if self.current_player is not None:
      starter = jax.vmap(self.current_player)(env_state)
      agent_player = jnp.where(jnp.arange(num_envs) % 2 == 0, starter, 1 - starter)

    keys = jax.random.split(key, max_steps)

    def step(carry):
      t, obs, env_state, total, running = carry
      k_search, k_random, k_step = jax.random.split(keys[t], 3)
      mask = self._invalid(env_state, num_envs)
      action = self.search(params, k_search, obs, mask, self._settings(0.), self.budget)[0]
      sign = jnp.ones((num_envs,))
      if self.current_player is not None:
        agent = jax.vmap(self.current_player)(env_state) == agent_player
        random = jax.random.categorical(k_random, jnp.where(mask > 0, -jnp.inf, 0.))
        action, sign = jnp.where(agent, action, random), jnp.where(agent, 1., -1.)
      obs, env_state, reward, done, _ = jax.vmap(self.test_env.step_env, (0, 0, 0, None))(
          jax.random.split(k_step, num_envs), env_state, action, self.env_params)
      total = total + jnp.where(running, sign * reward, 0.)
      return t + 1, obs, env_state, total, running & ~done

    # Until every episode has ended (or max_steps): short episodes end the test early.
    init = (jnp.int32(0), obs, env_state, jnp.zeros((num_envs,)), jnp.ones((num_envs,), bool))
    _, _, _, total, _ = jax.lax.while_loop(
        lambda carry: (carry[0] < max_steps) & carry[4].any(), step, init)
    return total
