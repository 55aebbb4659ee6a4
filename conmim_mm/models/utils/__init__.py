from .fused_ema import FusedCosineEMA

__all__ = ["FusedCosineEMA"]
