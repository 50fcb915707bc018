"""muax: MuZero with DeepMind's mctx for gymnasium environments."""
__version__ = "0.1.0"

from muax import checkpoint
from muax import envs
from muax import episode_tracer
from muax import games
from muax import legacy
from muax import loop
from muax import loss
from muax import model
from muax import nn
from muax import reanalyze
from muax import replay_buffer
from muax import runtime
from muax import sampled
from muax import stochastic
from muax import test
from muax import train
from muax import utils
from muax import value_prefix
from muax import variants
from muax import wrappers
from muax.episode_tracer import NStep
from muax.episode_tracer import PNStep
from muax.model import MuZero
from muax.reanalyze import Reanalyze
from muax.replay_buffer import PrioritizedReplayBuffer
from muax.replay_buffer import Trajectory
from muax.replay_buffer import TrajectoryReplayBuffer
from muax.train import fit
from muax.transition import Transition

runtime.apply_defaults()

__all__ = [
    "MuZero",
    "NStep",
    "PNStep",
    "PrioritizedReplayBuffer",
    "Reanalyze",
    "Trajectory",
    "TrajectoryReplayBuffer",
    "Transition",
    "checkpoint",
    "envs",
    "episode_tracer",
    "fit",
    "games",
    "legacy",
    "loop",
    "loss",
    "model",
    "nn",
    "reanalyze",
    "replay_buffer",
    "runtime",
    "sampled",
    "stochastic",
    "test",
    "train",
    "utils",
    "value_prefix",
    "variants",
    "wrappers",
]
