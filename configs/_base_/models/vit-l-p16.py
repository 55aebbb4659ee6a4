# ViT-L/16 (1024 wide, 24 layers, 16 heads) with layer scale 1e-5 (the official ViT-L command:
# --layer_scale_init_value 1e-5): what changes from the ViT-B/16 of vit-b-p16.py. The ViT-L
# pretraining model and every ViT-L downstream config (each on top of its ViT-B config) take it:
#   model = dict(backbone=_base_.vit_l_p16, ...)  and  _base_.vit_l_p16_embed_dims
vit_l_p16 = dict(arch='large', layer_scale_init_value=1e-5)
vit_l_p16_embed_dims = 1024
