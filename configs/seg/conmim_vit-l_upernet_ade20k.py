# UperNet on ADE20K with a ConMIM ViT-L/16 (1024 wide, 24 blocks): features of blocks
# 8/12/16/24 and 1024-channel heads, drop path 0.2 (BEiT-L's ADE20K value,
# upernet_beit_large_24_512_slide_160k). Neither ConMIM nor BEiT published a ViT-L ADE20K
# recipe for ImageNet-1K-only self-supervised checkpoints; lr 2e-4 and layer decay 0.85 (for
# twice the depth of ViT-B) are this package's choice and should be tuned before a benchmark
# run.
# Activation checkpointing keeps 24 blocks at 512x512 within a 32 GB GPU at batch 2.
_base_ = ['./conmim_vit-b_upernet_ade20k.py', '../_base_/models/vit-l-p16.py']

embed_dims = _base_.vit_l_p16_embed_dims
model = dict(
    backbone=dict(_base_.vit_l_p16, out_indices=(7, 11, 15, 23), drop_path_rate=0.2,
                  use_checkpoint=True),
    neck=dict(embed_dim=embed_dims),
    decode_head=dict(in_channels=[embed_dims] * 4, channels=embed_dims),
    auxiliary_head=dict(in_channels=embed_dims))
optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(layer_decay_rate=0.85))
