# The ConMIM pretraining model with a ViT-S/16 (384 wide, 12 layers, 6 heads).
_base_ = './conmim_vit-b-p16.py'

embed_dims = 384
conmim_vit = dict(arch='small')
model = dict(backbone=conmim_vit, neck=dict(in_channels=embed_dims))
