# Semantic segmentation on ADE20K with a ConMIM ViT-B/16: UperNet, 512x512 crops, 160k
# iterations at batch 16 (8 GPUs x 2), AdamW with layer-wise lr decay 0.65, drop path 0.1, AMP,
# slide inference. ConMIM follows BEiT here (official README); the values are those of BEiT's
# upernet_beit_base_12_512_slide_160k_ade20k_pt recipe for self-supervised checkpoints.
# Feature maps of blocks 4/6/8/12 (stride 16) become strides 4/8/16/32 with mmseg's
# Feature2Pyramid, as BEiT did.
#
#   python tools/train.py configs/seg/conmim_vit-b_upernet_ade20k.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PRETRAIN.pth
# PRETRAIN.pth: a ConMIM pretraining checkpoint with prefix 'teacher.module.backbone.'
# (model.backbone.init_cfg.prefix=...), or the teacher extracted by
# tools/model_converters/extract_backbone.py (prefix 'backbone.', the default here).
_base_ = [
    '../_base_/models/conmim_vit-b-p16_downstream.py',
    'mmseg::_base_/models/upernet_mae.py',
    'mmseg::_base_/datasets/ade20k.py',
    '../_base_/datasets/skip_unreadable.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
    '../_base_/downstream_runtime.py',
]
custom_imports = dict(imports=['conmim_mm', 'conmim_mm.seg'], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _base_.conmim_backbone,
        _delete_=True,
        img_size=crop_size,  # tables resized 14x14 -> 32x32 when the checkpoint loads
        out_indices=(3, 5, 7, 11)),
    neck=dict(type='Feature2Pyramid', embed_dim=_base_.embed_dims, rescales=[4, 2, 1, 0.5],
              norm_cfg=dict(type='SyncBN', requires_grad=True)),
    decode_head=dict(in_channels=[_base_.embed_dims] * 4, channels=_base_.embed_dims,
                     num_classes=150),
    auxiliary_head=dict(in_channels=_base_.embed_dims, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

# BEiT's ADE20K values: lr 7e-4 (batch 16), layer decay 0.65
optim_wrapper = dict(
    _base_.layer_decay_optim_wrapper,
    _delete_=True,
    optimizer=dict(_base_.layer_decay_optim_wrapper.optimizer, lr=7e-4))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0., by_epoch=False, begin=1500, end=160000),
]

# mmseg's ADE20K pipeline, loading with the transforms that skip an unreadable image or label map
train_pipeline = [dict(step, type=_base_.skip_unreadable.get(step['type'], step['type']))
                  for step in _base_.train_pipeline]
train_dataloader = dict(batch_size=2, num_workers=4,  # x 8 GPUs = 16
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader
default_hooks = _base_.downstream_hooks
# The recipe's total batch, 16 (8 GPUs x 2). Other clusters keep it by gradient accumulation
# (4 GPUs x 2 x 2): 160k optimiser steps of 16 crops as BEiT's, the iterations, validation and
# checkpoint intervals counted in optimiser steps; the decode head's SyncBN normalises over the
# GPUs of each micro-batch. --auto-scale-lr trains at the cluster's batch with the lr scaled
# linearly (fewer images seen in 160k steps: not the recipe).
train_cfg = dict(type='RecipeIterBasedTrainLoop', total_batch_policy='accumulate')
auto_scale_lr = dict(base_batch_size=16)
