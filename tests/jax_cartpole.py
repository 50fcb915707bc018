"""CartPole-v1 in JAX, written to gymnax's `Environment` interface.

gymnasium's CartPole dynamics (Euler steps, +1 per step, the pole past 12
degrees or the cart past 2.4 terminates, a 500-step time limit), with
gymnax's method names: `reset_env(key, params) -> (obs, state)` and
`step_env(key, state, action, params) -> (obs, state, reward, done, info)`,
`default_params`, `num_actions`, `observation_shape`, and the episode clock
in `state.time` against `params.max_steps_in_episode`. It is what a user
writes for `muax.loop.jitted` when their environment is not in gymnax.
"""
import chex
import jax
import jax.numpy as jnp


@chex.dataclass(frozen=True)
class EnvParams:
  gravity: float = 9.8
  masscart: float = 1.0
  masspole: float = 0.1
  length: float = 0.5
  force_mag: float = 10.0
  tau: float = 0.02
  theta_threshold: float = 12 * 2 * jnp.pi / 360
  x_threshold: float = 2.4
  max_steps_in_episode: int = 500


@chex.dataclass(frozen=True)
class EnvState:
  x: chex.Array
  x_dot: chex.Array
  theta: chex.Array
  theta_dot: chex.Array
  time: chex.Array


class CartPole:
  num_actions = 2
  observation_shape = (4,)

  @property
  def default_params(self) -> EnvParams:
    return EnvParams()

  def reset_env(self, key, params):
    x, x_dot, theta, theta_dot = jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05)
    state = EnvState(x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot,
                     time=jnp.zeros((), jnp.int32))
    return self._obs(state), state

  def step_env(self, key, state, action, params):
    del key
    force = params.force_mag * (2 * action.astype(jnp.float32) - 1)
    total_mass = params.masscart + params.masspole
    pole_mass_length = params.masspole * params.length
    cos, sin = jnp.cos(state.theta), jnp.sin(state.theta)
    temp = (force + pole_mass_length * state.theta_dot ** 2 * sin) / total_mass
    theta_acc = (params.gravity * sin - cos * temp) / (
        params.length * (4.0 / 3.0 - params.masspole * cos ** 2 / total_mass))
    x_acc = temp - pole_mass_length * theta_acc * cos / total_mass
    state = EnvState(x=state.x + params.tau * state.x_dot,
                     x_dot=state.x_dot + params.tau * x_acc,
                     theta=state.theta + params.tau * state.theta_dot,
                     theta_dot=state.theta_dot + params.tau * theta_acc,
                     time=state.time + 1)
    fallen = ((jnp.abs(state.x) > params.x_threshold)
              | (jnp.abs(state.theta) > params.theta_threshold))
    done = fallen | (state.time >= params.max_steps_in_episode)
    return self._obs(state), state, jnp.float32(1.), done, {}

  @staticmethod
  def _obs(state):
    return jnp.stack([state.x, state.x_dot, state.theta, state.theta_dot]).astype(jnp.float32)
