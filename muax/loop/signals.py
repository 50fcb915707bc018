"""`StopSignals`: Ctrl+C and SIGTERM as a request to stop at the next boundary."""
import os
import signal
import threading
from typing import Callable, Optional

from muax.loop.errors import TrainingInterrupted

__all__ = ["StopSignals"]


class StopSignals:
  """SIGINT/SIGTERM set a flag the loop checks; a second one stops at once.

  The second signal interrupts whatever the run is waiting on (a hung
  environment worker too): SIGINT raises KeyboardInterrupt, SIGTERM
  `TrainingInterrupted` (exit code 143); `forced` is then True and the vector
  environments' workers are terminated instead of waited for. Installed only
  in the main thread (Python delivers signals there); elsewhere the default
  behaviour stays.
  """

  def __init__(self, saved_path: Callable[[], Optional[str]] = lambda: None):
    self.signum = None
    self.forced = False
    self._saved_path = saved_path
    self._previous = {}

  def requested(self) -> bool:
    return self.signum is not None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is signal.SIG_IGN:
          continue  # e.g. a background job: the signal stays ignored
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    return False

  def _handle(self, signum, frame):
    name = signal.Signals(signum).name
    if self.signum is not None:
      self.forced = True
      if signum == signal.SIGINT:
        raise KeyboardInterrupt
      path = self._saved_path()
      message = (f"muax: second {name}: stopped at once, without saving the current "
                 f"episode; the last saved run state is {path} (resume with "
                 "fit(..., resume=True))")
      os.write(2, f"\n{message}\n".encode())
      raise TrainingInterrupted(signum, path, message)
    self.signum = signum
    again = "Ctrl+C" if signum == signal.SIGINT else name
    # os.write, not print: the handler may run in the middle of a print to stderr.
    os.write(2, (f"\nmuax: {name} received: finishing the current step and saving the "
                 f"run ({again} again stops at once)\n").encode())
