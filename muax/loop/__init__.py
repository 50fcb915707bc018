"""Host pieces of the training loop that exchange only arrays and params."""
from muax.loop import learning
from muax.loop.learning import Learner

__all__ = ["Learner", "learning"]
