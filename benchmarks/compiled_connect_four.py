"""pgx Connect Four in the compiled loop, against an MCTS opponent with random rollouts.

Trains `muax train pgx:connect_four` with the settings below (overridable with
`--set KEY=VALUE`, options of `muax train`) for `--max-training-steps`
updates, then plays `--games` greedy games, the agent moving first in half of
them, against a plain MCTS (mctx's MuZero policy over pgx's real game: uniform
priors, one random-rollout value per node, no learned parts) with
`--mcts-simulations` simulations per move; prints the wins, draws and losses
per seat as JSON lines, plus the wall-clock of training and of the games.
`--max-training-steps 0` plays the untrained agent (a check of the harness).

Usage: python benchmarks/compiled_connect_four.py [--max-training-steps 20000]
    [--mcts-simulations 1000] [--games 200] [--seed 0] [--set KEY=VALUE ...]
    [--platform cpu|gpu]
"""
import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import mctx
import numpy as np

from muax import cli
from muax import cli_compiled
from muax.loop.jitted import CompiledLoop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compiled_cartpole  # noqa: E402 (its --set parser)

# Tic-tac-toe's networks and search, wider, with n covering a whole game.
SETTINGS = dict(policy="gumbel", num_simulations=32, support_size=2, hidden=256,
                embedding_dim=64, discount=1., n_step=42, k_steps=5, learning_rate=3e-3,
                end_learning_rate=3e-4, num_envs=64, num_trajectory=128)


def mcts_player(env, num_simulations):
  """`act(key, states) -> [B]` actions of a rollout MCTS for a batch of pgx states."""

  def rollout(state, key):
    """The value of `state` for its player to move: one random game to the end."""
    player = state.current_player

    def body(carry):
      state, key = carry
      key, k_action = jax.random.split(key)
      action = jax.random.categorical(k_action, jnp.where(state.legal_action_mask, 0., -jnp.inf))
      return env.step(state, action), key

    final, _ = jax.lax.while_loop(lambda c: ~(c[0].terminated | c[0].truncated), body,
                                  (state, key))
    return final.rewards[player]

  def values(states, key):
    done = states.terminated | states.truncated
    value = jax.vmap(rollout)(states, jax.random.split(key, done.shape[0]))
    return jnp.where(done, 0., value)

  def priors(states):
    return jnp.where(states.legal_action_mask, 0., -1e9)

  def recurrent_fn(params, key, action, states):
    del params
    mover = states.current_player
    after = jax.vmap(env.step)(states, action)
    done = after.terminated | after.truncated
    reward = jnp.take_along_axis(after.rewards, mover[:, None], 1)[:, 0]
    return mctx.RecurrentFnOutput(reward=reward, discount=jnp.where(done, 0., -1.),
                                  prior_logits=priors(after),
                                  value=values(after, key)), after

  @jax.jit
  def act(key, states):
    k_root, k_search = jax.random.split(key)
    root = mctx.RootFnOutput(prior_logits=priors(states), value=values(states, k_root),
                             embedding=states)
    out = mctx.muzero_policy(None, k_search, root, recurrent_fn, num_simulations,
                             invalid_actions=~states.legal_action_mask, dirichlet_fraction=0.)
    visits = jnp.where(states.legal_action_mask, out.action_weights, -1.)
    return jnp.argmax(visits, axis=-1)

  return act


def play(model, env, mcts, games, num_simulations, seed):
  """Per seat `[wins, draws, losses]` of `model`'s greedy search against `mcts`."""
  key = jax.random.PRNGKey(seed)
  key, k_init = jax.random.split(key)
  state = jax.vmap(env.init)(jax.random.split(k_init, games))
  agent = np.where(np.arange(games) % 2 == 0, np.asarray(state.current_player),
                   1 - np.asarray(state.current_player))
  step = jax.jit(jax.vmap(env.step))
  total, running = np.zeros(games), np.ones(games, bool)
  while running.any():
    key, k_agent, k_mcts = jax.random.split(key, 3)
    legal = np.asarray(state.legal_action_mask)
    mine = model.act(k_agent, np.asarray(state.observation, np.float32), obs_from_batch=True,
                     num_simulations=num_simulations, temperature=0.,
                     invalid_actions=1. - legal.astype(np.float32))
    theirs = mcts(k_mcts, state)
    action = np.where(np.asarray(state.current_player) == agent, np.asarray(mine),
                      np.asarray(theirs))
    state = step(state, jnp.asarray(action, jnp.int32))
    rewards = np.asarray(state.rewards)[np.arange(games), agent]
    total += np.where(running, rewards, 0.)
    running &= ~np.asarray(state.terminated | state.truncated)
  seats = {}
  for name, games_of in (("first", total[0::2]), ("second", total[1::2])):
    seats[name] = [int((games_of > 0).sum()), int((games_of == 0).sum()),
                   int((games_of < 0).sum())]
  return seats


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--max-training-steps", type=int, default=20_000)
  parser.add_argument("--mcts-simulations", type=int, default=1000)
  parser.add_argument("--games", type=int, default=200)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--set", type=compiled_cartpole.override, nargs="*", default=[],
                      metavar="KEY=VALUE", help="muax train options to override")
  parser.add_argument("--platform", default=None)
  args = parser.parse_args()
  if args.platform:
    jax.config.update("jax_platform_name", args.platform)
  values = dict(SETTINGS, env_id="pgx:connect_four", seed=args.seed,
                max_training_steps=max(1, args.max_training_steps), **dict(args.set))
  config = cli.config_from_args(values, given=set(values))
  setup = cli_compiled.compiled_setup(config)
  model, env = setup["model"], setup["test_env"]
  start = time.perf_counter()
  if args.max_training_steps:
    loop = CompiledLoop(model, setup["env"], config=setup["loop_config"])
    state = loop.init(jax.random.PRNGKey(args.seed))
    while int(state.env_steps) < setup["max_env_steps"]:
      state, _ = loop.run(state, setup["chunk"])
      scores = np.asarray(loop.evaluate(state.train.params,
                                        jax.random.PRNGKey(int(state.env_steps)), 100, 42))
      print(json.dumps({"bench": "compiled_connect_four_train", "moves": int(state.env_steps),
                        "updates": int(state.train.count),
                        "vs_random_first": float(scores[0::2].mean()),
                        "vs_random_second": float(scores[1::2].mean()),
                        "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    model.restore_train_state(jax.device_get(state.train))
  train_s = time.perf_counter() - start
  start = time.perf_counter()
  seats = play(model, env.env, mcts_player(env.env, args.mcts_simulations), args.games,
               config.num_simulations, args.seed + 100)
  wins = seats["first"][0] + seats["second"][0]
  print(json.dumps({"bench": "compiled_connect_four", "seed": args.seed,
                    "updates": int(model.train_state.count),
                    "mcts_simulations": args.mcts_simulations, "games": args.games,
                    "first": seats["first"], "second": seats["second"],
                    "win_share": round(wins / args.games, 3), "train_s": round(train_s, 1),
                    "games_s": round(time.perf_counter() - start, 1),
                    "device": jax.devices()[0].platform}), flush=True)


if __name__ == "__main__":
  main()
