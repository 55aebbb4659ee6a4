# The ConMIM pretraining model (conmim.py) with the ViT-B/16 of vit-b-p16.py.
_base_ = ['./conmim.py', './vit-b-p16.py']

model = dict(backbone=_base_.conmim_vit, neck=dict(in_channels=_base_.embed_dims))
