# ViT-S/16 (384 wide, 12 layers, 6 heads, the paper's ViT-S): what changes from the ViT-B/16 of
# vit-b-p16.py. The ViT-S pretraining model and every ViT-S downstream config (each on top of
# its ViT-B config) take it:
#   model = dict(backbone=_base_.vit_s_p16, ...)  and  _base_.vit_s_p16_embed_dims
vit_s_p16 = dict(arch='small')
vit_s_p16_embed_dims = 384
