"""Reads scalars back from TensorBoard event files (for tests and inspection)."""
import glob
import os
import struct
import sys

from tensorboardX.proto import event_pb2


def read_events(logdir):
  """Every event of every event file under logdir, files in name order."""
  events = []
  for path in sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"),
                               recursive=True)):
    with open(path, "rb") as f:
      data = f.read()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      record = data[pos + 12:pos + 12 + length]
      pos += 12 + length + 4
      events.append(event_pb2.Event.FromString(record))
  return events


def read_scalars(logdir):
  """Returns {tag: [(step, value), ...]} from every event file under logdir."""
  scalars = {}
  for event in read_events(logdir):
    for value in event.summary.value:
      scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


if __name__ == "__main__":
  for tag, points in sorted(read_scalars(sys.argv[1]).items()):
    tail = points[-int(sys.argv[2]) if len(sys.argv) > 2 else -5:]
    print(tag, [(s, round(v, 3)) for s, v in tail])
