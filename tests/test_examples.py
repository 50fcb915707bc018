"""The examples run (on tiny budgets) and the notebook's code is valid Python."""
import json
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def _run(script, *args):
  return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args],
                        capture_output=True, text=True, timeout=600)


def test_custom_loop_example(tmp_path):
  out = _run("custom_loop.py", "--episodes", "3", "--warm-up", "2",
             "--updates-per-episode", "2", "--num-simulations", "4")
  assert out.returncode == 0, out.stderr
  assert "greedy returns of the reloaded model" in out.stdout


def test_lunarlander_example(tmp_path):
  pytest.importorskip("Box2D", reason="the box2d extra is not installed")
  out = subprocess.run(
      [sys.executable, os.path.abspath(os.path.join(EXAMPLES, "lunarlander.py")),
       "--max-episodes", "1", "--max-training-steps", "2", "--buffer-warm-up", "1",
       "--num-simulations", "2", "--test-interval", "1", "--no-progress"],
      capture_output=True, text=True, timeout=600, cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  assert "Best greedy test return" in out.stdout


def test_notebook_cells_compile():
  with open(os.path.join(EXAMPLES, "cartpole.ipynb")) as f:
    notebook = json.load(f)
  cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
  assert "pip install" in "".join(cells[0]["source"])
  for cell in cells:
    source = "".join(line for line in cell["source"] if not line.lstrip().startswith(("%", "!")))
    compile(source, "<notebook cell>", "exec")
  assert any("muax.fit(" in "".join(c["source"]) for c in cells)


def test_tictactoe_example(tmp_path):
  pytest.importorskip("pettingzoo", reason="the games extra is not installed")
  out = subprocess.run(
      [sys.executable, os.path.abspath(os.path.join(EXAMPLES, "tictactoe.py")),
       "--episodes", "2"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  assert "Best greedy test return" in out.stdout
  assert "against a random player, 50 games as each side" in out.stdout


def test_pendulum_example(tmp_path):
  out = subprocess.run(
      [sys.executable, os.path.abspath(os.path.join(EXAMPLES, "pendulum.py")),
       "--max-episodes", "1", "--max-training-steps", "2", "--buffer-warm-up", "1",
       "--num-simulations", "2", "--test-interval", "1", "--num-test-episodes", "1",
       "--no-progress"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  assert "best checkpoint: mean greedy return" in out.stdout
