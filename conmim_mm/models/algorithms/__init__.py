from .conmim import ConMIM

__all__ = ["ConMIM"]
