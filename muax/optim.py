"""The default optimizer: Adam with clipping and a warm-up, then decay.

`muax.model.optimizer` is this module's `optimizer` (the name users call).
"""
import optax

from muax import checks

__all__ = ["optimizer"]


def optimizer(init_value: float = 0., peak_value: float = 2e-2, end_value: float = 1e-3,
              warmup_steps: int = 1000, transition_steps: int = 10000,
              decay_rate: float = 0.8,
              clip_by_global_norm: float = 1.0) -> optax.GradientTransformation:
  """Adam with global-norm clipping and a warm-up then exponential-decay rate.

  The learning rate rises linearly from `init_value` to `peak_value` over
  `warmup_steps`, then decays by `decay_rate` every `transition_steps`, never
  below `end_value`.
  """
  for name, value in (("warmup_steps", warmup_steps), ("transition_steps", transition_steps)):
    checks.number(name, value, low=0., what=">= 0 (a number of steps)")
  for name, value in (("init_value", init_value), ("peak_value", peak_value),
                      ("end_value", end_value)):
    checks.number(name, value, low=0., what="a learning rate >= 0")
  checks.number("decay_rate", decay_rate, low=0., strict=True, what="a number > 0")
  checks.number("clip_by_global_norm", clip_by_global_norm, low=0., strict=True,
                what="a number > 0")
  if transition_steps == 0:
    transition_steps = 1
  if warmup_steps == 0:
    schedule = optax.exponential_decay(peak_value, transition_steps, decay_rate,
                                       end_value=end_value)
  else:
    schedule = optax.warmup_exponential_decay_schedule(
        init_value=init_value, peak_value=peak_value, warmup_steps=warmup_steps,
        transition_steps=transition_steps, decay_rate=decay_rate, end_value=end_value)
  return optax.chain(optax.clip_by_global_norm(clip_by_global_norm),
                     optax.adam(schedule))
