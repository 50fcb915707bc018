"""`Variant`: one algorithm as a frozen set of pure functions.

The `MuZero` façade holds one `Variant` and calls it for everything that
differs between algorithms: building the parameters, searching, packing the
decision into one array (one device-to-host copy per `act`), reading it back,
the default loss, and checking batches, masks, action spaces and checkpoints.
A variant's functions close over the transformed networks and the model's
settings, never over the façade, so the traced ones (`plan`, `search`,
`batch_is_sane`) read no mutable object.

Each algorithm's `make(model) -> Variant` (`muax.variants.muzero.make`,
`muax.stochastic.make_variant`, `muax.sampled.make_variant`,
`muax.value_prefix.make_variant`) builds it once per model, from the model's
public settings; `muax.variants` registers which `make` each `policy` uses.
"""
import dataclasses
from typing import Any, Callable, Mapping, Optional

__all__ = ["Variant"]


@dataclasses.dataclass(frozen=True)
class Variant:
  """An algorithm's functions (traced ones run under the façade's `jax.jit`).

  Host functions take numpy arrays and raise on bad input; traced ones take
  arrays and a `SearchConfig` / `SearchBudget` (`muax.core.types`).
  """
  # (key, sample[B, ...]) -> (params, num_actions): pure, checks the networks' shapes.
  init: Callable
  # traced (params, key, obs[B, ...], invalid[B, A], SearchConfig, SearchBudget)
  #   -> packed [B, P]: the decision and whatever `unpack` reads back.
  plan: Callable
  # host packed [B, P] -> (action[B] or [B, D], value[B], pi[B, A], extras {field: [B, ...]}).
  unpack: Callable
  # the default `loss_fn(model, params, batch) -> scalar or (scalar, metrics)`.
  loss: Callable
  # host (batch, *, what, lead, obs_shape, num_actions, bootstrap) -> None: raises
  # ValueError on shapes or (numpy) values `update` cannot take.
  check_batch: Callable
  # traced (batch, num_actions) -> [] bool: an update on a batch that is not sane is skipped.
  batch_is_sane: Callable
  # host (invalid_actions or None, batch, num_actions) -> mask [B, A] float32 (1 = invalid).
  mask: Callable
  # host (space, num_actions or None, what) -> None: ValueError if the model cannot act in it.
  check_action_space: Callable
  # traced (params, key, obs, invalid, SearchConfig, SearchBudget) -> (action[B],
  # pi[B, A], value[B]): the search reanalysis re-runs; None when it cannot.
  search: Optional[Callable] = None
  # traced, as `search`, -> (action[B] or [B, D], pi[B, A], value[B], extras {field:
  # [B, ...]}): the search an acting loop records, with what it stores besides the
  # common fields (Sampled MuZero: its candidates); None: `search`, no extras.
  act: Optional[Callable] = None
  # what a checkpoint records besides the common metadata (checked by `check_checkpoint`).
  metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  # host (metadata, file) -> None: CheckpointError for a checkpoint of another setting.
  check_checkpoint: Optional[Callable] = None
  # host action `a[B, ...]` as the user gives it -> what the dynamics network takes.
  model_action: Callable = lambda a: a  # noqa: E731
