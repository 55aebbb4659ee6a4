# The ConMIM pretraining model with the ViT-S/16 of vit-s-p16.py.
_base_ = ['./conmim_vit-b-p16.py', './vit-s-p16.py']

embed_dims = _base_.vit_s_p16_embed_dims
conmim_vit = _base_.vit_s_p16
model = dict(backbone=_base_.vit_s_p16, neck=dict(in_channels=embed_dims))
