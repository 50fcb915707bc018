"""Single-bit flips of a run state: is each one refused, or harmless?

python benchmarks/bit_flips.py [--flips 20000] [--seed 0] [--file PATH]
                               [--reader module.path]

Flips one random bit of a copy of the file per trial (half anywhere, half in
the zip and .npy headers and the zip directory, where a flip can change what
is read rather than only spoil a CRC) and reads it with `checkpoint.read`.
Each outcome is one of: refused (UnreadableCheckpointError), harmless (the
same params, optimizer state, metadata, run record and arrays as the
original), altered (read without an error but different) or another
exception. Prints one JSON line per reader. `--reader` reads with another
module of the same interface (e.g. a copy of an older muax.checkpoint).
"""
import argparse
import collections
import importlib.util
import io
import json
import os
import random
import sys
import tempfile
import zipfile

import jax
import numpy as np

from muax import checkpoint

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(_HERE, "..", "tests", "fixtures", "0.1.0", "run_muzero", "run",
                       "state_0000004.npz")


def _snapshot(reader, file):
  params, opt, meta, run, arrays = reader.read(file, run_arrays=True)
  leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves((params, opt, arrays))]
  return (jax.tree_util.tree_structure((params, opt, arrays)),
          [(x.dtype.str, x.shape, x.tobytes()) for x in leaves], meta, run)


def _structural(data: bytes):
  positions = []
  with zipfile.ZipFile(io.BytesIO(data)) as zf:
    for info in zf.infolist():
      positions.extend(range(info.header_offset, info.header_offset + 30 + 200))
  positions.extend(range(data.find(b"PK\x01\x02"), len(data)))
  return [p for p in positions if 0 <= p < len(data)]


def run(reader, data: bytes, flips: int, seed: int) -> dict:
  rng = random.Random(seed)
  structural = _structural(data)
  with tempfile.TemporaryDirectory() as tmp:
    original = os.path.join(tmp, "state_0000001.npz")
    with open(original, "wb") as f:
      f.write(data)
    reference = _snapshot(reader, original)
    target = os.path.join(tmp, "state_0000002.npz")
    counts = collections.Counter()
    for i in range(flips):
      pos = rng.randrange(len(data)) if i % 2 else rng.choice(structural)
      flipped = bytearray(data)
      flipped[pos] ^= 1 << rng.randrange(8)
      with open(target, "wb") as f:
        f.write(flipped)
      try:
        got = _snapshot(reader, target)
      except reader.CheckpointError:
        counts["refused"] += 1
        continue
      except Exception as e:  # pylint: disable=broad-except
        counts[f"exception {type(e).__name__}"] += 1
        continue
      counts["harmless" if got == reference else "altered"] += 1
  return dict(counts)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--flips", type=int, default=20_000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--file", default=DEFAULT)
  parser.add_argument("--reader", default=None, help="path of another checkpoint.py")
  args = parser.parse_args(argv)
  with open(args.file, "rb") as f:
    data = f.read()
  readers = [("muax.checkpoint", checkpoint)]
  if args.reader:
    spec = importlib.util.spec_from_file_location("other_checkpoint", args.reader)
    other = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    readers.append((args.reader, other))
  for name, reader in readers:
    counts = run(reader, data, args.flips, args.seed)
    print(json.dumps({"reader": name, "file": os.path.relpath(args.file), "bytes": len(data),
                      "flips": args.flips, "seed": args.seed, **counts}), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
