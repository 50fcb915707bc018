"""muax's pure core: frozen types and pure functions over arrays.

Nothing here holds state, opens files, steps an environment or calls
`jax.jit`: the façade (`muax.model`) and the runners jit at their edge.
"""
from muax.core import learner
from muax.core import types
from muax.core.types import LearnerOutput
from muax.core.types import SearchBudget
from muax.core.types import SearchConfig
from muax.core.types import TrainState

__all__ = [
    "LearnerOutput",
    "SearchBudget",
    "SearchConfig",
    "TrainState",
    "learner",
    "types",
]
