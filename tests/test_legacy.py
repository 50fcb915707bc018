"""muax.legacy: opt-in conversion of the old package's pickled `.npy` files."""
import os
import pickle
import subprocess
import warnings

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import make_mlp_model

import muax
from muax import legacy
from muax.checkpoint import CheckpointError

KEY = jax.random.PRNGKey(0)
OBS = np.array([0.02, -0.01, 0.03, 0.01], np.float32)
SAMPLE = np.zeros((1, 4), np.float32)


def _save_old(path, model):
  """Writes a checkpoint exactly as muax 0.0.2's `save_load(file, save=True)` did."""
  jnp.save(path, {"params": model.params, "optimizer_state": model.optimizer_state})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A model whose params and optimizer state differ from a fresh init's.

  As after training (Adam's count and moments non-zero), without the cost of
  compiling an update: the state is bumped and loaded through a checkpoint.
  """
  base = make_mlp_model()
  rng = np.random.default_rng(0)

  def bump(x):
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.floating):
      return x + rng.normal(scale=0.1, size=x.shape).astype(x.dtype)
    return x + 3

  path = muax.checkpoint.save(
      tmp_path_factory.mktemp("trained") / "m", jax.tree_util.tree_map(bump, base.params),
      jax.tree_util.tree_map(bump, base.optimizer_state), base.checkpoint_metadata())
  model = make_mlp_model(init=False).load(path)
  assert int(jax.tree_util.tree_leaves(model.optimizer_state)[0]) == 3
  return model


def _assert_same_state(a, b):
  la = jax.tree_util.tree_leaves((a.params, a.optimizer_state))
  lb = jax.tree_util.tree_leaves((b.params, b.optimizer_state))
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert np.asarray(x).dtype == np.asarray(y).dtype
  assert (jax.tree_util.tree_structure(a.optimizer_state)
          == jax.tree_util.tree_structure(b.optimizer_state))


def test_convert_old_jax_checkpoint_round_trip(tmp_path, trained):
  _save_old(tmp_path / "cartpole_model_params", trained)
  assert (tmp_path / "cartpole_model_params.npy").is_file()
  fresh = make_mlp_model(init=False)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    out = legacy.convert(tmp_path / "cartpole_model_params", fresh, sample_input=SAMPLE)
  assert out == str(tmp_path / "cartpole_model_params.npz")
  _assert_same_state(trained, fresh)
  loaded = make_mlp_model(init=False).load(out)
  _assert_same_state(trained, loaded)
  expected = trained.act(KEY, OBS, temperature=0., with_value=True)
  assert loaded.act(KEY, OBS, temperature=0., with_value=True) == expected


def test_read_legacy_returns_numpy(tmp_path, trained):
  _save_old(tmp_path / "m", trained)
  for given in ("m", "m.npy"):
    old = legacy.read_legacy(tmp_path / given)
    assert set(old) == {"params", "optimizer_state"}
    leaves = jax.tree_util.tree_leaves(old["params"])
    assert leaves and all(type(x) is np.ndarray for x in leaves)
    assert set(old["params"]) == {"representation", "prediction", "dynamic"}
    want = jax.tree_util.tree_leaves(trained.optimizer_state)
    assert len(old["optimizer_state"]) == len(want)
    for x, y in zip(old["optimizer_state"], want):
      assert type(x) is np.ndarray
      np.testing.assert_array_equal(x, np.asarray(y))


def test_name_with_dots_without_suffix(tmp_path, trained):
  _save_old(tmp_path / "saved_by_0.0.2.8.3", trained)
  assert (tmp_path / "saved_by_0.0.2.8.3.npy").is_file()
  out = legacy.convert(str(tmp_path / "saved_by_0.0.2.8.3"), make_mlp_model(init=False),
                       sample_input=SAMPLE)
  assert out == str(tmp_path / "saved_by_0.0.2.8.3.npz")
  _assert_same_state(trained, make_mlp_model(init=False).load(out))


def test_numpy_only_file_and_plain_pickle(tmp_path, trained):
  as_numpy = jax.tree_util.tree_map(
      np.asarray, {"params": trained.params, "optimizer_state": trained.optimizer_state})
  np.save(tmp_path / "np_params", as_numpy, allow_pickle=True)
  model = make_mlp_model()  # already initialised: no sample_input needed
  out = legacy.convert(tmp_path / "np_params.npy", model, out=tmp_path / "converted")
  assert out == str(tmp_path / "converted.npz")
  _assert_same_state(trained, model)
  for protocol in (3, 4, 5):
    with open(tmp_path / "plain.pkl", "wb") as f:
      pickle.dump(as_numpy, f, protocol=protocol)
    old = legacy.read_legacy(tmp_path / "plain.pkl")
    for x, y in zip(jax.tree_util.tree_leaves(old["params"]),
                    jax.tree_util.tree_leaves(trained.params)):
      np.testing.assert_array_equal(x, np.asarray(y))


def test_params_only_file_resets_optimizer(tmp_path, trained):
  np.save(tmp_path / "p", {"params": jax.tree_util.tree_map(np.asarray, trained.params)},
          allow_pickle=True)
  assert legacy.read_legacy(tmp_path / "p")["optimizer_state"] is None
  model = make_mlp_model(init=False)
  with pytest.warns(UserWarning, match="optimizer state was reset"):
    legacy.convert(tmp_path / "p", model, sample_input=SAMPLE)
  for x, y in zip(jax.tree_util.tree_leaves(model.params),
                  jax.tree_util.tree_leaves(trained.params)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


class _Reduce:
  def __init__(self, fn, args):
    self.fn, self.args = fn, args

  def __reduce__(self):
    return (self.fn, self.args)


@pytest.mark.parametrize("fn,args,name", [
    (os.system, ("touch hacked",), f"{os.system.__module__}.system"),
    (eval, ("open('hacked', 'w').close()",), "builtins.eval"),
    (subprocess.Popen, (["touch", "hacked"],), "subprocess.Popen"),
])
def test_hostile_pickles_are_refused_without_running(tmp_path, monkeypatch, fn, args, name):
  monkeypatch.chdir(tmp_path)
  evil = _Reduce(fn, args)
  np.save("evil_npy.npy", {"params": {"x": evil}}, allow_pickle=True)
  with open("evil.pkl", "wb") as f:
    pickle.dump({"params": evil}, f)
  for given in ("evil_npy", "evil.pkl"):
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")) as info:
      legacy.read_legacy(given)
    assert "refused" in str(info.value) and given in str(info.value)
    model = make_mlp_model(init=False)
    with pytest.raises(CheckpointError, match="refused"):
      legacy.convert(given, model, sample_input=SAMPLE)
    assert model.params is None  # the model is left untouched
  assert not os.path.exists("hacked")
  assert sorted(os.listdir()) == ["evil.pkl", "evil_npy.npy"]  # nothing written


def test_files_of_older_numpy_and_jax(tmp_path):
  data = pickle.dumps({"params": {"a": {"w": jnp.arange(3.)}},
                       "optimizer_state": (np.float32(1.5), [np.int32(2)])}, protocol=3)
  for name in (b"jax._src.array\n_reconstruct_array\n", b"numpy._core.multiarray\nscalar\n",
               b"numpy._core.multiarray\n_reconstruct\n"):
    assert name in data
  data = data.replace(b"jax._src.array\n_reconstruct_array\n",  # jax 0.3, numpy 1.x
                      b"jax._src.device_array\n_reconstruct_device_array\n")
  (tmp_path / "old.pkl").write_bytes(data.replace(b"numpy._core.", b"numpy.core."))
  old = legacy.read_legacy(tmp_path / "old.pkl")
  assert type(old["params"]["a"]["w"]) is np.ndarray
  np.testing.assert_array_equal(old["params"]["a"]["w"], np.arange(3.))
  assert [x.item() for x in old["optimizer_state"]] == [1.5, 2]


@pytest.mark.parametrize("obj", [jax.random.PRNGKey, hk.transform, optax.adam])
def test_jax_haiku_and_optax_functions_are_refused(tmp_path, obj):
  with open(tmp_path / "f.pkl", "wb") as f:
    pickle.dump({"params": {"x": obj}}, f)
  with pytest.raises(CheckpointError, match=rf"global {obj.__module__}\.{obj.__name__},"):
    legacy.read_legacy(tmp_path / "f.pkl")


def test_crafted_rebuild_and_persistent_ids_are_refused(tmp_path):
  # _reconstruct_array(numpy.dtype, ('f4',), None, {}): fun is not _reconstruct.
  (tmp_path / "r.pkl").write_bytes(
      b"\x80\x03cjax._src.array\n_reconstruct_array\n(cnumpy\ndtype\n"
      b"X\x02\x00\x00\x00f4\x85N}tR.")
  with pytest.raises(CheckpointError, match="refused.*_reconstruct"):
    legacy.read_legacy(tmp_path / "r.pkl")
  (tmp_path / "p.pkl").write_bytes(b"\x80\x03Pabc\n.")
  with pytest.raises(CheckpointError, match="persistent"):
    legacy.read_legacy(tmp_path / "p.pkl")


def test_other_architecture_names_a_key_path(tmp_path):
  _save_old(tmp_path / "big", make_mlp_model(embedding=16))
  with pytest.raises(CheckpointError, match="same way") as info:
    legacy.convert(tmp_path / "big", make_mlp_model(init=False), sample_input=SAMPLE)
  assert ("['dynamic']['dynamic/linear_3']['w']: file has (64, 16), model has (64, 8)"
          in str(info.value))
  assert not (tmp_path / "big.npz").exists()


def test_truncated_and_random_files(tmp_path, trained):
  _save_old(tmp_path / "good", trained)
  data = (tmp_path / "good.npy").read_bytes()
  cuts = {"cut_body": data[: len(data) // 2], "cut_header": data[:20],
          "random": np.random.default_rng(0).bytes(4096),
          "random_pickle": b"\x80" + np.random.default_rng(1).bytes(4096),
          "empty": b"", "int_array": None}
  for name, content in cuts.items():
    if content is None:
      np.save(tmp_path / name, np.arange(3))
    else:
      (tmp_path / f"{name}.npy").write_bytes(content)
    with pytest.raises(CheckpointError, match=name):
      legacy.read_legacy(tmp_path / name)


def test_sample_input_required_and_missing_file(tmp_path, trained):
  _save_old(tmp_path / "m", trained)
  with pytest.raises(ValueError, match="sample_input"):
    legacy.convert(tmp_path / "m", make_mlp_model(init=False))
  with pytest.raises(FileNotFoundError):
    legacy.read_legacy(tmp_path / "nothing")


def test_foreign_optimizer_state_is_reset_and_out_not_overwritten(tmp_path):
  sgd_model = make_mlp_model(optimizer=optax.sgd(1e-2, momentum=0.9))
  _save_old(tmp_path / "sgd", sgd_model)
  model = make_mlp_model(init=False)
  with pytest.warns(UserWarning, match="optimizer state was reset"):
    out = legacy.convert(tmp_path / "sgd", model, sample_input=SAMPLE)
  for x, y in zip(jax.tree_util.tree_leaves(model.params),
                  jax.tree_util.tree_leaves(sgd_model.params)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  fresh = model.optimizer.init(model.params)
  for x, y in zip(jax.tree_util.tree_leaves(model.optimizer_state),
                  jax.tree_util.tree_leaves(fresh)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  before = open(out, "rb").read()
  with pytest.raises(FileExistsError):
    legacy.convert(tmp_path / "sgd", make_mlp_model(init=False), sample_input=SAMPLE)
  with pytest.raises(FileExistsError):
    legacy.convert(tmp_path / "sgd", make_mlp_model(), out=tmp_path / "sgd")
  assert open(out, "rb").read() == before


def test_string_arrays_are_refused_not_converted(tmp_path, trained):
  # '7.5' must not come back as 7.5, nor 'abc' as a raw ValueError.
  for text in ("7.5", "abc"):
    leaves = [np.array(text) if np.issubdtype(np.asarray(x).dtype, np.floating) else x
              for x in jax.tree_util.tree_leaves(trained.optimizer_state)]
    np.save(tmp_path / f"old_{text}.npy",
            np.array({"params": jax.tree_util.tree_map(np.asarray, trained.params),
                      "optimizer_state": tuple(leaves)}, dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="not a numeric array"):
      legacy.convert(tmp_path / f"old_{text}", make_mlp_model(init=False), SAMPLE)
