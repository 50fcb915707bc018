"""The errors a `fit` run raises on purpose (re-exported by `muax.train`)."""
from typing import Optional

__all__ = ["ResumeMismatch", "TrainingDiverged", "TrainingInterrupted"]


class TrainingInterrupted(SystemExit):
  """`fit` stopped on Ctrl+C (SIGINT) or SIGTERM after saving the run.

  A `SystemExit` with code 130 (SIGINT) or 143 (SIGTERM): a script exits
  quietly with that code; catch it to go on. `path` is the run state saved.
  """

  def __init__(self, signum: int, path: Optional[str], message: str):
    super().__init__(128 + int(signum))
    self.signum, self.path, self.message = int(signum), path, message

  def __str__(self):
    return self.message


class TrainingDiverged(RuntimeError):
  """Too many updates in a row had a non-finite loss or gradient."""


class ResumeMismatch(ValueError):
  """`resume` found a run of another environment, model or replay kind."""
