"""The Atari 100k benchmark: MuZero after 100,000 agent steps (400,000 frames).

Run: python benchmarks/atari100k.py --games Breakout Pong   (meant for a GPU)
     python benchmarks/atari100k.py --games all
     python benchmarks/atari100k.py --smoke                 (CPU, under a minute)

The protocol of the Atari 100k papers (Kaiser et al., 2020, SimPLe; Schwarzer
et al., 2021, SPR; Ye et al., 2021, EfficientZero): 100k agent steps per game
with frame skip 4 (400k frames), sticky actions off, up to 30 no-op starts,
episodes cut at 27,000 steps (108,000 frames), full episodes (no termination
on life loss) and the game's minimal action set. After training, the greedy
agent plays `--eval-episodes` episodes; the report gives each game's mean raw
score and its human-normalised score

  HNS = (score - random) / (human - random)

with the random-policy and human scores in `SCORES` (the table used across
the Atari 100k literature, e.g. the appendices of SPR and EfficientZero; the
human scores go back to Mnih et al., 2015 and Wang et al., 2016), then the
median and mean HNS over the games played. For scale, the issue that asked
for this script quotes medians of 0.29 (jax_muzero) and 1.09 (EfficientZero)
over the 26 games.

Acting and learning are a plain loop (so the step budget is exact): play an
episode (or the rest of the budget) with `model.act`, store it in replay as
uint8 frames, then run `--replay-ratio` updates per step played.

`--smoke` runs the same pipeline at toy size (one game, a few hundred steps,
tiny nets, short evaluation) and prints the same report; its scores mean
nothing.
"""
import argparse
import json
import statistics
import time

import jax
import numpy as np

import muax
from muax import acting
from muax import envs
from muax import nn

AGENT_STEPS = 100_000
FRAME_SKIP = 4

# game: (random score, human score), as in the Atari 100k papers' tables.
SCORES = {
    "Alien": (227.8, 7127.7),
    "Amidar": (5.8, 1719.5),
    "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3),
    "BankHeist": (14.2, 753.1),
    "BattleZone": (2360.0, 37187.5),
    "Boxing": (0.1, 12.1),
    "Breakout": (1.7, 30.5),
    "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4),
    "DemonAttack": (152.1, 1971.0),
    "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7),
    "Gopher": (257.6, 2412.5),
    "Hero": (1027.0, 30826.4),
    "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3),
    "MsPacman": (307.3, 6951.6),
    "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0),
    "RoadRunner": (11.5, 7845.0),
    "Seaquest": (68.4, 42054.7),
    "UpNDown": (533.4, 11693.2),
}


def human_normalized(game: str, score: float) -> float:
  """`(score - random) / (human - random)` with the scores in `SCORES`."""
  if game not in SCORES:
    raise ValueError(f"no random/human scores for {game!r}: choose from {sorted(SCORES)}")
  random_score, human_score = SCORES[game]
  return (score - random_score) / (human_score - random_score)


def report(results: dict) -> str:
  """A table of raw and human-normalised scores, then their median and mean.

  Args:
    results: game -> mean raw score.
  """
  lines = [f"{'game':<16}{'score':>10}{'random':>10}{'human':>10}{'HNS':>8}"]
  hns = []
  for game, score in results.items():
    random_score, human_score = SCORES[game]
    hns.append(human_normalized(game, score))
    lines.append(f"{game:<16}{score:>10.1f}{random_score:>10.1f}{human_score:>10.1f}"
                 f"{hns[-1]:>8.3f}")
  lines.append(f"human-normalised score over {len(hns)} game(s): median "
               f"{statistics.median(hns):.3f}, mean {statistics.fmean(hns):.3f}")
  return "\n".join(lines)


def build_model(num_actions, args):
  return muax.MuZero(
      *nn.resnet_networks(num_actions, args.support_size, channels=args.channels,
                          num_blocks=args.blocks, prediction_blocks=args.blocks,
                          dynamic_blocks=max(args.blocks, 1), downsample="muzero",
                          head_hidden=(args.head,)),
      policy="gumbel", discount=args.discount, support_size=args.support_size,
      optimizer=muax.model.optimizer(init_value=0., peak_value=args.lr,
                                     end_value=args.lr / 10, warmup_steps=1000,
                                     transition_steps=args.steps))


def run_game(game, args):
  """Trains on `game` for `args.steps` agent steps; returns the mean greedy score."""
  make = lambda max_steps: envs.make_atari(  # noqa: E731
      game, sticky_actions=False, frame_skip=FRAME_SKIP, screen_size=args.screen_size,
      frame_stack=args.frame_stack, max_episode_steps=max_steps)
  env, eval_env = make(27_000), make(args.eval_max_steps)
  model = build_model(env.action_space.n, args)
  keys = acting.KeyStream(jax.random.PRNGKey(args.seed))
  seeds = np.random.default_rng(args.seed)
  obs, _ = env.reset(seed=args.seed)
  model.init(keys(), np.asarray(obs)[None])
  tracer = muax.PNStep(args.n_step, args.discount, 0.5)
  buffer = muax.TrajectoryReplayBuffer(None, random_seed=args.seed,
                                       max_bytes=int(args.replay_gb * 2 ** 30),
                                       obs_dtype=np.uint8)
  steps, updates, episodes, owed, start = 0, 0, 0, 0., time.perf_counter()
  while steps < args.steps:
    done = steps / args.steps
    temperature = 1. if done < 0.5 else 0.5 if done < 0.75 else 0.25
    # The step cap keeps the budget exact (a cut episode is bootstrapped).
    episode = acting.run_episode(model, env, keys, num_simulations=args.num_simulations,
                                 temperature=temperature, seed=int(seeds.integers(2 ** 31)),
                                 tracer=tracer, max_episode_steps=args.steps - steps)
    ret, n = episode.episode_return, episode.length
    steps, episodes = steps + n, episodes + 1
    trajectory = episode.trajectory
    buffer.add(trajectory, float(np.mean(trajectory.batched_transitions.w)))
    # Updates run in groups of `update_chunk` (one compiled program for all).
    owed += args.replay_ratio * n
    while owed >= args.update_chunk:
      batches = buffer.sample(num_trajectory=args.num_trajectory, k_steps=args.k_steps,
                              sample_per_trajectory=args.sample_per_trajectory,
                              num_batches=args.update_chunk)
      model.update_many(batches)
      owed, updates = owed - args.update_chunk, updates + args.update_chunk
    print(json.dumps(dict(game=game, agent_steps=steps, frames=steps * FRAME_SKIP,
                          episodes=episodes, updates=updates, episode_return=ret,
                          seconds=round(time.perf_counter() - start, 1))), flush=True)
  score = muax.test.test(model, eval_env, jax.random.PRNGKey(args.seed + 1),
                         args.num_simulations, args.eval_episodes,
                         random_seed=args.seed + 1)
  print(json.dumps(dict(game=game, eval_episodes=args.eval_episodes, score=score,
                        hns=round(human_normalized(game, score), 4))), flush=True)
  return score


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--games", nargs="+", default=["Breakout"],
                      help="games from SCORES, or 'all' for the 26")
  parser.add_argument("--smoke", action="store_true",
                      help="toy-sized end-to-end run on one game (CPU, < 1 minute)")
  parser.add_argument("--steps", type=int, default=AGENT_STEPS, help="agent steps per game")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--num-simulations", type=int, default=16)
  parser.add_argument("--channels", type=int, default=64)
  parser.add_argument("--blocks", type=int, default=1)
  parser.add_argument("--head", type=int, default=128)
  parser.add_argument("--support-size", type=int, default=300)
  parser.add_argument("--discount", type=float, default=0.997)
  parser.add_argument("--n-step", type=int, default=5)
  parser.add_argument("--k-steps", type=int, default=5)
  parser.add_argument("--lr", type=float, default=2e-3)
  parser.add_argument("--replay-ratio", type=float, default=1.,
                      help="updates per agent step")
  parser.add_argument("--update-chunk", type=int, default=16,
                      help="updates per dispatch (owed updates wait for a full chunk)")
  parser.add_argument("--num-trajectory", type=int, default=64)
  parser.add_argument("--sample-per-trajectory", type=int, default=4)
  parser.add_argument("--frame-stack", type=int, default=4)
  parser.add_argument("--screen-size", type=int, default=96)
  parser.add_argument("--replay-gb", type=float, default=8.)
  parser.add_argument("--eval-episodes", type=int, default=32)
  parser.add_argument("--eval-max-steps", type=int, default=27_000)
  args = parser.parse_args(argv)
  if args.smoke:
    args.games = args.games[:1]
    for name, value in dict(steps=200, num_simulations=2, channels=4, blocks=0, head=16,
                            support_size=5, k_steps=3, replay_ratio=0.02, update_chunk=2,
                            num_trajectory=2, sample_per_trajectory=2, frame_stack=2,
                            replay_gb=0.25, eval_episodes=1, eval_max_steps=50).items():
      setattr(args, name, value)
  if args.games == ["all"]:
    args.games = list(SCORES)
  unknown = [g for g in args.games if g not in SCORES]
  if unknown:
    parser.error(f"unknown game(s) {unknown}: choose from {sorted(SCORES)} or 'all'")
  return args


def main(argv=None):
  args = parse_args(argv)
  print(json.dumps(dict(protocol="atari100k", agent_steps=args.steps,
                        frames=args.steps * FRAME_SKIP, sticky_actions=False,
                        smoke=args.smoke, games=args.games)), flush=True)
  start = time.perf_counter()
  results = {game: run_game(game, args) for game in args.games}
  print(report(results))
  print(f"total wall-clock {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
  main()
