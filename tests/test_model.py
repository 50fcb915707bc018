import inspect
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muax
from muax import checkpoint, nn
from conftest import make_mlp_model

OBS = np.array([0.01, -0.02, 0.03, 0.01], np.float32)
KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_act_single_four_flag_combinations(policy):
  model = make_mlp_model(policy)
  a = model.act(KEY, OBS, num_simulations=8)
  assert type(a) is int and a in (0, 1)
  a, v = model.act(KEY, OBS, with_value=True, num_simulations=8)
  assert type(a) is int and type(v) is float
  a, pi = model.act(KEY, OBS, with_pi=True, num_simulations=8)
  assert pi.shape == (2,) and pi.sum() == pytest.approx(1., abs=1e-5)
  assert np.asarray(pi).reshape(1, -1).shape == (1, 2)  # old code reshaped (1, A)
  a, pi, v = model.act(KEY, OBS, with_pi=True, with_value=True, num_simulations=8)
  assert type(a) is int and pi.shape == (2,) and type(v) is float


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_act_batched(policy):
  model = make_mlp_model(policy)
  obs = np.tile(OBS, (5, 1))
  a = model.act(KEY, obs, obs_from_batch=True, num_simulations=8)
  assert isinstance(a, np.ndarray) and a.shape == (5,)
  a, pi, v = model.act(KEY, obs, with_pi=True, with_value=True, obs_from_batch=True,
                       num_simulations=8)
  assert a.shape == (5,) and pi.shape == (5, 2) and v.shape == (5,)
  a, v = model.act(KEY, obs, with_value=True, obs_from_batch=True, num_simulations=8)
  assert v.shape == (5,)


def test_greedy_is_deterministic_across_keys():
  model = make_mlp_model()
  outs = {model.act(jax.random.PRNGKey(k), OBS, with_pi=True, num_simulations=8,
                    temperature=0.)[1].tobytes() for k in range(5)}
  assert len(outs) == 1


def test_no_recompilation_when_temperature_key_or_data_change():
  model = make_mlp_model()
  model.act(KEY, OBS, num_simulations=8, temperature=1.)
  size = model.compiled_searches
  for k in range(4):
    model.act(jax.random.PRNGKey(k), OBS + k, num_simulations=8, temperature=[1., 0.5, 0., 2][k],
              dirichlet_fraction=0.1 * k)
  assert model.compiled_searches == size
  model.act(KEY, OBS, num_simulations=9)  # a new simulation count does compile
  assert model.compiled_searches == size + 1


def test_unknown_policy_raises_in_constructor_old_defect_4():
  with pytest.raises(ValueError, match="unknown policy 'alphazero'"):
    make_mlp_model("alphazero", init=False)


def test_fresh_default_optimizer_old_defect_7():
  assert inspect.signature(muax.MuZero).parameters["optimizer"].default is None
  assert inspect.signature(muax.MuZero).parameters["loss_fn"].default is None
  a, b = make_mlp_model(), make_mlp_model()
  assert a.optimizer is not b.optimizer


def test_init_returns_params_dict(cartpole_model):
  assert set(cartpole_model.params) == {"representation", "prediction", "dynamic"}
  assert cartpole_model.optimizer_state is not None


def test_network_applies():
  model = make_mlp_model()
  s = model.representation(OBS[None])
  assert s.shape == (1, 8) and float(s.min()) >= 0. and float(s.max()) <= 1.
  v, logits = model.prediction(s)
  assert v.shape == (1, 21) and logits.shape == (1, 2)
  r, ns = model.dynamic(s, jnp.array([1]))
  assert r.shape == (1, 21) and ns.shape == s.shape


def _batch(b=4, k=3, obs_dim=4):
  rng = np.random.default_rng(0)
  return muax.Transition(obs=rng.normal(size=(b, k, obs_dim)).astype(np.float32),
                         a=rng.integers(0, 2, (b, k)).astype(np.int32),
                         r=np.ones((b, k), np.float32), done=np.zeros((b, k), bool),
                         Rn=np.full((b, k), 7., np.float32), v=np.zeros((b, k), np.float32),
                         pi=np.tile([0.9, 0.1], (b, k, 1)).astype(np.float32),
                         w=np.ones((b, k), np.float32))


def test_update_learns_a_fixed_batch():
  model = make_mlp_model(optimizer=muax.model.optimizer(warmup_steps=0, peak_value=1e-2))
  batch = _batch()
  first = model.update(batch)
  assert isinstance(first["loss"], float) and first["skipped"] == 0.
  for _ in range(150):
    last = model.update(batch)
  assert last["loss"] < 0.5 * first["loss"]


def test_update_skips_non_finite():
  model = make_mlp_model()
  batch = _batch()
  bad = batch.replace(Rn=np.full_like(batch.Rn, np.nan))
  before = jax.tree_util.tree_leaves(model.params)
  out = model.update(bad)
  assert out["skipped"] == 1.
  for x, y in zip(before, jax.tree_util.tree_leaves(model.params)):
    np.testing.assert_array_equal(x, y)


def test_custom_scalar_loss_fn():
  calls = []

  def my_loss(model, params, batch):
    calls.append(1)
    loss, _ = muax.loss.default_loss_fn(model, params, batch)
    return loss

  model = make_mlp_model(loss_fn=my_loss)
  out = model.update(_batch())
  assert calls and set(out) >= {"loss", "grad_norm", "skipped"}


@pytest.mark.parametrize("suffix", ["", ".npz"])
def test_save_load_round_trip_on_fresh_instance(tmp_path, suffix):
  model = make_mlp_model()
  model.update(_batch())
  path = str(tmp_path / "ckpt" / "model_params")
  model.save(path + suffix)
  fresh = make_mlp_model(init=False)
  fresh.load(path)  # without the suffix
  fresh2 = make_mlp_model(init=False)
  fresh2.load(path + ".npz")
  for m in (fresh, fresh2):
    for x, y in zip(jax.tree_util.tree_leaves((model.params, model.optimizer_state)),
                    jax.tree_util.tree_leaves((m.params, m.optimizer_state))):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert fresh.act(KEY, OBS, temperature=0.) == model.act(KEY, OBS, temperature=0.)
  fresh.update(_batch())  # optimizer state is usable


def test_load_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="no muax checkpoint"):
    make_mlp_model(init=False).load(str(tmp_path / "nothing"))


class _Evil:
  def __reduce__(self):
    return (os.system, ("touch PWNED_BY_PICKLE",))


def test_pickle_checkpoint_never_runs_old_defect_13(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with open("evil.npy", "wb") as f:
    pickle.dump({"params": _Evil()}, f)
  np.save("evil_obj.npy", np.array([_Evil()], dtype=object), allow_pickle=True)
  for name in ("evil.npy", "evil_obj.npy"):
    with pytest.raises(checkpoint.CheckpointError, match="pickle"):
      make_mlp_model(init=False).load(name)
  assert not os.path.exists("PWNED_BY_PICKLE")


def test_foreign_and_truncated_checkpoints(tmp_path):
  np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
  with pytest.raises(checkpoint.CheckpointError, match="not a muax checkpoint"):
    make_mlp_model(init=False).load(str(tmp_path / "foreign.npz"))
  model = make_mlp_model()
  good = model.save(str(tmp_path / "good"))
  data = open(good, "rb").read()
  open(tmp_path / "cut.npz", "wb").write(data[: len(data) // 2])
  with pytest.raises(checkpoint.CheckpointError, match="corrupted, truncated"):
    make_mlp_model(init=False).load(str(tmp_path / "cut.npz"))


def test_mismatched_checkpoint(tmp_path):
  path = make_mlp_model().save(str(tmp_path / "m"))
  with pytest.raises(checkpoint.CheckpointError, match="do not fit"):
    make_mlp_model(embedding=16, init=False).load(path)
  with pytest.raises(checkpoint.CheckpointError, match="support_size"):
    make_mlp_model(support_size=5, init=False).load(path)


def test_save_leaves_no_temporary_files(tmp_path):
  model = make_mlp_model()
  for _ in range(3):
    model.save(str(tmp_path / "m"))
  assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_input_errors():
  model = make_mlp_model()
  with pytest.raises(ValueError, match=r"observation has shape \(3,\).*\(4,\)"):
    model.act(KEY, np.zeros(3))
  with pytest.raises(ValueError, match="batch of observations"):
    model.act(KEY, np.zeros((2, 5)), obs_from_batch=True)
  with pytest.raises(ValueError, match="NaN"):
    model.act(KEY, np.array([np.nan, 0, 0, 0]))
  with pytest.raises(ValueError, match="invalid_actions has shape"):
    model.act(KEY, OBS, invalid_actions=np.zeros(3))
  with pytest.raises(ValueError, match="every action invalid"):
    model.act(KEY, OBS, invalid_actions=np.ones(2))
  with pytest.raises(ValueError, match="num_simulations"):
    model.act(KEY, OBS, num_simulations=0)
  with pytest.raises(ValueError, match="temperature"):
    model.act(KEY, OBS, temperature=-1.)
  with pytest.raises(RuntimeError, match="model.init"):
    make_mlp_model(init=False).act(KEY, OBS)
  with pytest.raises(ValueError, match=r"batch.obs has shape"):
    model.update(_batch(obs_dim=3))
  with pytest.raises(ValueError, match="support_size"):
    make_mlp_model(support_size=0, init=False)
  with pytest.raises(ValueError, match="discount"):
    make_mlp_model(discount=1.5, init=False)


@pytest.mark.parametrize("which", ["value", "policy", "reward"])
def test_wrong_network_output_sizes(which):
  size = 21

  def pred_fn(s):
    v, p = nn.Prediction(2, size - 1 if which == "value" else size)(s)
    return v, (p[:, :0] if which == "policy" else p)

  def dyn_fn(s, a):
    return nn.Dynamic(8, 2, size + 2 if which == "reward" else size)(s, a)

  model = muax.MuZero(nn._init_representation_func(nn.Representation, 8), pred_fn, dyn_fn)
  match = {"value": r"value logits .*2\*support_size\+1", "policy": "policy logits",
           "reward": r"reward logits .*2\*support_size\+1"}[which]
  with pytest.raises(ValueError, match=match):
    model.init(KEY, np.zeros((1, 4), np.float32))


def test_mcts_not_pinned_to_a_backend_old_defect_11():
  import muax.model as model_module
  import muax.search as search_module
  for module in (model_module, search_module):
    assert "backend=" not in inspect.getsource(module)
  model = make_mlp_model()
  model.act(KEY, OBS, num_simulations=4)
  assert model.params["prediction"][next(iter(model.params["prediction"]))]["w"].devices() \
      == {jax.devices()[0]}
