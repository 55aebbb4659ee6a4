# The ConMIM pretraining model with the ViT-L/16 of vit-l-p16.py (layer scale 1e-5).
_base_ = ['./conmim_vit-b-p16.py', './vit-l-p16.py']

embed_dims = _base_.vit_l_p16_embed_dims
conmim_vit = _base_.vit_l_p16
model = dict(backbone=_base_.vit_l_p16, neck=dict(in_channels=embed_dims))
