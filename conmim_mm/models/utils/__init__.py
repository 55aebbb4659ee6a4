from .data_preprocessor import ConMIMDataPreprocessor
from .fused_ema import FusedCosineEMA
from .teacher_view import teacher_view

__all__ = ['ConMIMDataPreprocessor', 'FusedCosineEMA', 'teacher_view']
