"""Checkpoint files: damaged files are refused, never returned altered."""
import io
import json
import os
import random
import zipfile

import numpy as np
import pytest

from muax import checkpoint
from conftest import make_mlp_model

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "0.1.0")
RUN_STATE = os.path.join(FIXTURES, "run_muzero", "run", "state_0000004.npz")


def _entries(file):
  """`{entry name: array}` of an .npz file, read with numpy."""
  with zipfile.ZipFile(file) as zf:
    return {info.filename: np.lib.format.read_array(io.BytesIO(zf.read(info)))
            for info in zf.infolist()}


def _write(file, entries):
  """An .npz file (stored, as np.savez writes it) of `{entry name: array}`."""
  with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as zf:
    for name, array in entries.items():
      data = io.BytesIO()
      np.lib.format.write_array(data, np.asarray(array), allow_pickle=False)
      zf.writestr(name, data.getvalue())
  return file


def _manifest(entries):
  return json.loads(entries["__muax__.npy"].tobytes().decode())


def _with_manifest(entries, manifest):
  raw = json.dumps(manifest).encode()
  return dict(entries, **{"__muax__.npy": np.frombuffer(raw, np.uint8)})


def _read_all(file):
  params, opt, meta, run, arrays = checkpoint.read(file, run_arrays=True)
  return params, opt, meta, run, arrays


def _assert_same(a, b):
  import jax
  la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(la, lb):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def _structural_offsets(data: bytes):
  """Byte offsets of the zip's local headers, .npy headers and central directory."""
  offsets = []
  with zipfile.ZipFile(io.BytesIO(data)) as zf:
    for info in zf.infolist():
      offsets.extend(range(info.header_offset, info.header_offset + 30 + 128 + 64))
    end = data.rfind(b"PK\x05\x06")
    start = data.find(b"PK\x01\x02")
    offsets.extend(range(start, len(data)))
  assert end > start > 0
  return [o for o in offsets if o < len(data)]


def test_single_bit_flips_are_refused_or_harmless(tmp_path):
  # Each flip either is caught (UnreadableCheckpointError) or touched bytes
  # that carry no data: what comes back is then exactly the original.
  data = open(RUN_STATE, "rb").read()
  original = _read_all(RUN_STATE)
  rng = random.Random(0)
  structural = _structural_offsets(data)
  positions = ([rng.randrange(len(data)) for _ in range(600)]
               + [rng.choice(structural) for _ in range(1400)])
  refused = harmless = 0
  target = tmp_path / "state_0000004.npz"
  for position in positions:
    flipped = bytearray(data)
    flipped[position] ^= 1 << rng.randrange(8)
    target.write_bytes(bytes(flipped))
    try:
      got = _read_all(target)
    except checkpoint.UnreadableCheckpointError:
      refused += 1
      continue
    for i in (0, 1, 4):  # params, optimizer leaves, run arrays
      _assert_same(got[i], original[i])
    assert got[2] == original[2] and got[3] == original[3]  # metadata, run record
    harmless += 1
  assert refused > 1500 and harmless > 0  # most flips matter; some hit padding


def test_a_header_that_shortens_an_array_is_refused(tmp_path):
  # The flip numpy's reader let through: a smaller shape in an entry's .npy
  # header, so the rest of the entry (and its CRC) was never read.
  entries = _entries(RUN_STATE)
  with zipfile.ZipFile(RUN_STATE) as zf:
    raw = {info.filename: zf.read(info) for info in zf.infolist()}
  shape = entries["p0.npy"].shape
  header = raw["p0.npy"]
  old = str(shape).encode()
  new = str((shape[0] - 1,) + shape[1:]).encode().ljust(len(old))
  assert old in header[:128]
  damaged = header[:128].replace(old, new, 1) + header[128:]
  with zipfile.ZipFile(tmp_path / "short.npz", "w", zipfile.ZIP_STORED) as zf:
    for name, payload in raw.items():
      zf.writestr(name, damaged if name == "p0.npy" else payload)
  with pytest.raises(checkpoint.UnreadableCheckpointError, match="p0"):
    checkpoint.read(tmp_path / "short.npz")


@pytest.mark.parametrize("change, match", [
    (lambda m: [m], "not a muax checkpoint"),
    (lambda m: {k: v for k, v in m.items() if k != "param_paths"}, "param_paths"),
    (lambda m: {k: v for k, v in m.items() if k != "num_opt_leaves"}, "num_opt_leaves"),
    (lambda m: dict(m, param_paths="representation"), "param_paths"),
    (lambda m: dict(m, param_paths=[[1, 2]] + m["param_paths"][1:]), "param_paths"),
    (lambda m: dict(m, param_paths=[m["param_paths"][0]] * len(m["param_paths"])),
     "repeat"),
    (lambda m: dict(m, num_opt_leaves=-1), "num_opt_leaves"),
    (lambda m: dict(m, num_opt_leaves=True), "num_opt_leaves"),
    (lambda m: dict(m, num_opt_leaves=m["num_opt_leaves"] + 1), "no array 'o"),
    (lambda m: dict(m, version="1"), "version"),
    (lambda m: dict(m, metadata=[]), "metadata must be a dict"),
    (lambda m: dict(m, run=[1]), "run must be a dict"),
])
def test_damaged_manifests_are_refused(tmp_path, change, match):
  entries = _entries(RUN_STATE)
  file = _write(tmp_path / "bad.npz", _with_manifest(entries, change(_manifest(entries))))
  with pytest.raises(checkpoint.UnreadableCheckpointError, match=match):
    make_mlp_model(init=False).load(file)


@pytest.mark.parametrize("field, value", [
    ("num_actions", 3), ("num_actions", "2"), ("obs_shape", [5]), ("obs_shape", "4"),
    ("obs_shape", None), ("support_size", "10"), ("discount", "0.99"),
    ("two_player", "no"), ("policy", 3), ("policy", None), ("support_size", None),
])
def test_metadata_that_disagrees_with_the_arrays_is_refused(tmp_path, field, value):
  entries = _entries(RUN_STATE)
  manifest = _manifest(entries)
  manifest["metadata"][field] = value
  file = _write(tmp_path / "bad.npz", _with_manifest(entries, manifest))
  with pytest.raises(checkpoint.CheckpointError):
    make_mlp_model(init=False).load(file)


def test_missing_metadata_fields_are_refused(tmp_path):
  entries = _entries(RUN_STATE)
  manifest = _manifest(entries)
  del manifest["metadata"]["num_actions"]
  file = _write(tmp_path / "bad.npz", _with_manifest(entries, manifest))
  with pytest.raises(checkpoint.CheckpointError, match="'num_actions' is 'missing'"):
    make_mlp_model(init=False).load(file)


@pytest.mark.parametrize("entry", ["p0.npy", "o1.npy"])
@pytest.mark.parametrize("dtype", [np.int32, np.complex64, np.bool_, "<U3"])
def test_arrays_of_the_right_shape_but_another_dtype_are_refused(tmp_path, entry, dtype):
  entries = _entries(RUN_STATE)
  assert entries[entry].dtype == np.float32 and entries[entry].size > 1
  entries[entry] = entries[entry].astype(dtype)
  file = _write(tmp_path / "bad.npz", entries)
  with pytest.raises(checkpoint.CheckpointError, match="has dtype"):
    make_mlp_model(init=False).load(file)


def test_a_good_rewritten_file_still_loads(tmp_path):
  # The helpers above change only what each test changes.
  file = _write(tmp_path / "same.npz", _entries(RUN_STATE))
  model = make_mlp_model(init=False).load(file)
  _assert_same(model.params, checkpoint.load(RUN_STATE)[0])


def test_an_old_package_checkpoint_beside_the_path_is_named(tmp_path):
  # The old package's fit returned `.../name` and wrote `.../name.npy`, a
  # pickle, for names with dots too.
  for name in ("cartpole_model_params", "saved_by_0.0.2.8.3"):
    np.save(tmp_path / f"{name}.npy", np.array({"params": {}}, dtype=object),
            allow_pickle=True)
    with pytest.raises(checkpoint.LegacyCheckpointError,
                       match=r"old muax package.*muax.legacy.convert"):
      make_mlp_model(init=False).load(str(tmp_path / name))


def test_temporary_file_names():
  assert checkpoint.is_temporary(".model_params.npz.k2j_8xq1.tmp")
  assert checkpoint.is_temporary(".state_0000004.npz.abcdefgh.tmp")
  assert not checkpoint.is_temporary("model_params.npz")
  assert not checkpoint.is_temporary(".notes.tmp")


def test_the_directory_record_is_found_where_numpy_writes_it(tmp_path):
  # A run state whose zip directory starts at byte 0x06054B50 (about 101 MB)
  # holds the record's own signature in its offset field.
  record = (b"PK\x05\x06" + (0).to_bytes(4, "little") + (2).to_bytes(2, "little") * 2
            + (92).to_bytes(4, "little") + b"PK\x05\x06" + b"\x00\x00")
  (tmp_path / "tail.npz").write_bytes(b"x" * 100 + record)
  assert checkpoint._directory_count(tmp_path / "tail.npz") == (2, 2)
