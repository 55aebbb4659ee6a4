# The ConMIM pretraining model with a ViT-L/16 (1024 wide, 24 layers, 16 heads); layer scale
# 1e-5 as in the official ViT-L command (README: --layer_scale_init_value 1e-5).
_base_ = './conmim_vit-b-p16.py'

embed_dims = 1024
conmim_vit = dict(arch='large', layer_scale_init_value=1e-5)
model = dict(backbone=conmim_vit, neck=dict(in_channels=embed_dims))
