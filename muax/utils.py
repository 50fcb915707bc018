"""Small helpers kept under their historical names."""
from muax.support import h, h_inv, logits_to_scalar, scalar_to_support, support_to_scalar

__all__ = ["h", "h_inv", "logits_to_scalar", "scalar_to_support", "support_to_scalar"]
