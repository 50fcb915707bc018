"""Trajectories and a bounded ring buffer of them, sampled as `[B, K, ...]` windows.

A window of K steps starts at any step of a trajectory. Past the end of a
*terminated* episode the window continues in the absorbing state, as in the
MuZero pseudocode: reward 0, value target 0, uniform policy target, random
action. A trajectory that ended without terminating (time limit, or cut by the
user) has no known future, so its windows must fit inside it.

Storage is one ring of steps per field: a trajectory is copied in once, at
`add`, and the oldest trajectories are overwritten as they are evicted. The
ring grows by doubling until it reaches the step bound (`max_transitions`, or
what `max_bytes` allows), so memory stays flat once the buffer is full.
Sampling gathers all windows of a batch with one fancy index per field.

The classes live in `muax.uniform_replay` and `muax.prioritized_replay`, their
storage in `muax.replay_store`; this module is where users import them from.
"""
from muax.prioritized_replay import PrioritizedReplayBuffer
from muax.transition import Transition
from muax.uniform_replay import Trajectory
from muax.uniform_replay import TrajectoryReplayBuffer

__all__ = ["PrioritizedReplayBuffer", "Trajectory", "TrajectoryReplayBuffer", "Transition"]
