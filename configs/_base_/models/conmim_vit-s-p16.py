# The ConMIM pretraining model with a ViT-S/16 (384 wide, 12 layers, 6 heads).
_base_ = './conmim_vit-b-p16.py'

model = dict(backbone=dict(arch='small'), neck=dict(in_channels=384))
