# ImageNet-1K fine-tuning of a ConMIM ViT-L/16 (1024 wide, 24 blocks). ConMIM published no ViT-L
# fine-tuning command; this is MAE's ViT-L ImageNet-1K recipe exactly (MAE FINETUNE.md, also
# mmpretrain's MAE vit-large-p16 fine-tuning config): 50 epochs, 5 warm-up, batch 1024,
# lr 4e-3 (blr 1e-3 x 1024 / 256), layer decay 0.75, drop path 0.2, weight decay 0.05,
# RandAugment, random erasing 0.25, mixup 0.8 / cutmix 1.0, label smoothing 0.1 - the ViT-B
# config's augmentation, which is MAE's too. Layer scale 1e-5 as in the ViT-L pretraining.
# Paper: 84.6 (400 ep) / 85.2 (800 ep) / 85.5 (1600 ep).
_base_ = ['./conmim_vit-b_ft_in1k.py', '../_base_/models/vit-l-p16.py']

model = dict(
    backbone=dict(_base_.vit_l_p16, drop_path_rate=0.2),
    head=dict(in_channels=_base_.vit_l_p16_embed_dims))
optim_wrapper = dict(optimizer=dict(lr=4e-3), paramwise_cfg=dict(layer_decay_rate=0.75))
max_epochs = 50
warmup_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
