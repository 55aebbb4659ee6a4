from .conmim_vit import ConMIMViT, SDPABEiTAttention

__all__ = ["ConMIMViT", "SDPABEiTAttention"]
