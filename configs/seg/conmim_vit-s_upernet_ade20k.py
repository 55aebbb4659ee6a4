# UperNet on ADE20K with a ConMIM ViT-S/16 (384 wide, 12 blocks): the ViT-B recipe
# (conmim_vit-b_upernet_ade20k.py) with 384-channel heads. ConMIM released no ViT-S segmentation
# recipe; BEiT's base values are kept.
_base_ = ['./conmim_vit-b_upernet_ade20k.py', '../_base_/models/vit-s-p16.py']

embed_dims = _base_.vit_s_p16_embed_dims
model = dict(
    backbone=_base_.vit_s_p16,
    neck=dict(embed_dim=embed_dims),
    decode_head=dict(in_channels=[embed_dims] * 4, channels=embed_dims),
    auxiliary_head=dict(in_channels=embed_dims))
