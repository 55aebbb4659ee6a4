# ImageNet-1K fine-tuning of a ConMIM ViT-S/16 (384 wide, 12 blocks, 6 heads). The official code
# has no ViT-S fine-tuning model or command, and BEiT published no ViT-S recipe either, so this is
# the ViT-B recipe (conmim_vit-b_ft_in1k.py: 100 epochs, lr 4e-3 at batch 1024, layer decay 0.65,
# drop path 0.1) at ViT-S width. Paper: 82.0 top-1 (300 ep pretraining).
_base_ = ['./conmim_vit-b_ft_in1k.py', '../_base_/models/vit-s-p16.py']

model = dict(backbone=_base_.vit_s_p16, head=dict(in_channels=_base_.vit_s_p16_embed_dims))
