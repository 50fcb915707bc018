"""The registry of algorithms: a new variant is one `make` plus its registry line."""
import jax
import mctx
import numpy as np
import pytest

import muax
from muax import nn
from muax import variants
from muax.core.variant import Variant
from muax.variants import muzero


def make_minmax(model) -> Variant:
  """MuZero whose search normalises Q values by the tree's min and max
  (mctx.qtransform_by_min_max) instead of by parent and siblings."""
  return muzero.make(model, search_policy="muzero",
                     qtransform=lambda tree, node: mctx.qtransform_by_min_max(
                         tree, node, min_value=-20., max_value=20.))


@pytest.fixture
def minmax():
  variants.register("muzero_minmax", make_minmax, supports=("reanalysis",))
  yield
  variants.unregister("muzero_minmax")


def _model(policy):
  return muax.MuZero(*_networks(), policy=policy)


def test_a_variant_defined_here_trains_through_fit(tmp_path, minmax):
  model = _model("muzero_minmax")
  assert type(model) is muax.MuZero and model.policy == "muzero_minmax"
  assert isinstance(model.variant, Variant)
  result = muax.train.run(
      model, env_id="CartPole-v1", max_episodes=4, test_interval=4, num_test_episodes=1,
      num_simulations=4, k_steps=3, buffer_warm_up=2, num_trajectory=4,
      sample_per_trajectory=2, num_update_per_episode=3, progress=False, random_seed=0,
      tensorboard_dir=str(tmp_path / "tb"), model_save_path=str(tmp_path / "m"),
      checkpoint_interval=0, reanalyze=muax.Reanalyze(num_simulations=3))
  assert result.training_steps == 12 and int(model.train_state.count) == 12
  loaded = _model("muzero_minmax").load(result.best_path)
  assert loaded.policy == "muzero_minmax"
  assert loaded.checkpoint_metadata()["policy"] == "muzero_minmax"


def test_the_variants_search_differs_from_muzeros(minmax):
  obs = np.linspace(-1., 1., 8, dtype=np.float32).reshape(2, 4)
  ours, plain = _model("muzero_minmax"), _model("muzero")
  rng = np.random.default_rng(0)
  for model in (ours, plain):
    model.init(jax.random.PRNGKey(0), obs[:1])
  # Random weights everywhere (fresh heads output zeros: every Q would tie).
  params = jax.tree_util.tree_map(
      lambda x: rng.normal(scale=0.5, size=x.shape).astype(np.float32), plain.params)
  for model in (ours, plain):
    model.restore_train_state(model.train_state.replace(params=params))
  _, pi_ours, v_ours = ours.act(jax.random.PRNGKey(1), obs, obs_from_batch=True,
                                with_pi=True, with_value=True, num_simulations=16,
                                temperature=0.)
  _, pi_plain, v_plain = plain.act(jax.random.PRNGKey(1), obs, obs_from_batch=True,
                                   with_pi=True, with_value=True, num_simulations=16,
                                   temperature=0.)
  assert not np.allclose(pi_ours, pi_plain), (pi_ours, pi_plain)


def test_what_a_variant_supports_is_checked_from_the_registry(minmax):
  with pytest.raises(ValueError, match="does not support two_player=True"):
    muax.MuZero(*_networks(), policy="muzero_minmax", two_player=True)
  with pytest.raises(ValueError, match="reanalyze works with policy 'muzero' or 'gumbel' "
                                       "or 'muzero_minmax', not policy='stochastic'"):
    muax.stochastic.build_model(2).set_reanalyze(0.5)
  assert variants.supporting("reanalysis") == ("muzero", "gumbel", "muzero_minmax")
  with pytest.raises(ValueError, match="unknown policy 'nope'"):
    variants.get("nope")


def _networks():
  return (nn._init_representation_func(nn.Representation, 8),
          nn._init_prediction_func(nn.Prediction, 2, 21),
          nn._init_dynamic_func(nn.Dynamic, 8, 2, 21))
