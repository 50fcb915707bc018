"""Loads the repository's scripts (examples, benchmarks) as modules for tests.

By path, never by putting their folders on `sys.path`: `examples/minatar.py`
and `benchmarks/minatar.py` would then hide the minatar package.
"""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(relative_path: str, name: str):
  """The module of the script at `ROOT/relative_path`, imported as `name`."""
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relative_path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
