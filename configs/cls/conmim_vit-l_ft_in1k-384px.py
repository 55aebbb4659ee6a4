# The paper's 384x384 ConMIM ViT-L/16 (86.3 / 86.5 top-1 for 800 / 1600 ep pretraining): the
# 224x224 fine-tuned model (conmim_vit-l_ft_in1k.py, 50 epochs) trained 10 % more epochs at
# 384x384, i.e. 5 epochs, with the ViT-L model settings of that config (drop path 0.2, layer
# decay 0.75, layer scale 1e-5). lr 5e-4 at batch 512, 1 warm-up epoch and the augmentation are
# conmim_vit-b_ft_in1k-384px.py's choices (the paper gives only the epoch ratio).
#
#   python tools/train.py configs/cls/conmim_vit-l_ft_in1k-384px.py --cfg-options \
#       model.backbone.init_cfg.checkpoint=FT224.pth model.head.init_cfg.checkpoint=FT224.pth
_base_ = ['./conmim_vit-b_ft_in1k-384px.py', '../_base_/models/vit-l-p16.py']

model = dict(
    backbone=dict(_base_.vit_l_p16, drop_path_rate=0.2),
    head=dict(in_channels=_base_.vit_l_p16_embed_dims))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.75))
max_epochs = 5
warmup_epochs = 1
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
