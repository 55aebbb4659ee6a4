# COCO detection and instance segmentation the way masked-image-modeling papers report it since
# 2022: ViTDet Mask R-CNN (Li et al., "Exploring Plain Vision Transformer Backbones for Object
# Detection", ECCV 2022) on a ConMIM ViT-B/16. Not the ConMIM paper's protocol (MIMDet); the
# cheaper BEiT-style recipe is conmim_vit-b_mask-rcnn_coco.py. Source of each value:
#   [d2-model] detectron2 configs/common/models/mask_rcnn_vitdet.py (architecture);
#   [d2-b]     detectron2 projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py (schedule);
#   [d2-lsj]   detectron2 projects/ViTDet/configs/common/coco_loader_lsj.py and mmdet's
#              common/lsj-100e_coco-instance.py (large-scale jitter, inherited below);
#   [paper]    the ViTDet paper (AdamW lr 1e-4, weight decay 0.1, batch 64, 100 epochs).
# Reference numbers (MAE ViT-B, this recipe): 51.6 box AP / 45.9 mask AP (detectron2 model zoo),
# 51.4 / 45.8 in mmdet's reproduction (projects/ViTDet).
# Differences kept on purpose: the ConMIM ViT keeps its [CLS] token and relative position
# tables and has no absolute position embedding (see conmim_mm/det/windowed_vit.py); biases get no
# weight decay (this package's layer-decay constructor; detectron2 decays them).
#
#   bash tools/dist_train.sh configs/det/conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PRETRAIN.pth train_dataloader.batch_size=8
# (batch 64 = 32 GPUs x 2 as set here, or 8 GPUs x 8 as in this command.)
_base_ = [
    '../_base_/models/conmim_vit-b-p16_downstream.py',
    'mmdet::common/lsj-100e_coco-instance.py',  # LSJ 1024, scale 0.1-2.0, flip [d2-lsj]
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/skip_unreadable.py',
    '../_base_/downstream_runtime.py',
]
custom_imports = dict(imports=['conmim_mm', 'conmim_mm.det'], allow_failed_imports=False)

image_size = (1024, 1024)  # [d2-lsj]
# LayerNorm over channels in the pyramid and the box and mask heads, eps 1e-6 [d2-model]
norm_cfg = dict(type='LN2d', eps=1e-6, requires_grad=True)
model = dict(
    # every training batch padded to 1024x1024 (the crop of LSJ), as detectron2's square_pad
    data_preprocessor=dict(
        pad_size_divisor=32,
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _base_.conmim_backbone,
        _delete_=True,
        type='ConMIMViTDet',
        img_size=image_size,  # global blocks: tables resized 14x14 -> 64x64 on loading
        window_size=14,  # [d2-model]
        global_attn_indices=(2, 5, 8, 11),  # [d2-model]
        out_indices=(11, ),  # the last map only [d2-model]
        pad_to_img_size=True,  # test images padded to 1024x1024 as detectron2's square_pad
        drop_path_rate=0.1,  # [d2-model]
        use_checkpoint=True),  # 4096 tokens per image: recompute block activations in backward
    neck=dict(
        _delete_=True,
        type='SimpleFPN',  # strides 4/8/16/32 from the stride-16 map, + P6 [d2-model]
        in_channels=_base_.embed_dims,
        out_channels=256,
        scale_factors=(4, 2, 1, 0.5),
        num_outs=5,
        norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),  # 2-conv RPN [d2-model]
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256,
                       fc_out_channels=1024, norm_cfg=norm_cfg),  # 4 conv + 1 fc [d2-model]
        mask_head=dict(norm_cfg=norm_cfg)))  # [d2-model]

# LSJ as mmdet writes it, loading with the transforms that skip an unreadable image or
# annotation (configs/_base_/datasets/skip_unreadable.py)
train_pipeline = [dict(step, type=_base_.skip_unreadable.get(step['type'], step['type']))
                  for step in _base_.train_pipeline]

# test: longest side 1024 [d2-lsj] (the backbone pads to 1024x1024, see pad_to_img_size)
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.1 [paper, d2-b], layer decay 0.7 for
# ViT-B [d2-b], AMP [d2-b]
optim_wrapper = dict(
    _base_.layer_decay_optim_wrapper,
    _delete_=True,
    optimizer=dict(_base_.layer_decay_optim_wrapper.optimizer, lr=1e-4, weight_decay=0.1),
    paramwise_cfg=dict(_base_.layer_decay_optim_wrapper.paramwise_cfg, layer_decay_rate=0.7))

# 100 epochs = 184,375 iterations x 64 images / 118k images; lr x0.1 at 88 and 96 epochs
# (iterations 163,889 and 177,546), 250 warm-up iterations from 0.001 [d2-b]
max_iters = 184375
milestones = [163889, 177546]
val_interval = 5000  # as mmdet's projects/ViTDet
train_dataloader = dict(batch_size=2,  # 32 GPUs x 2 = 64 [paper]
                        dataset=dict(dataset=dict(pipeline=train_pipeline)))
# The recipe's total batch, 64 (auto_scale_lr). Clusters of fewer than 32 GPUs keep it by gradient
# accumulation (8 GPUs x 2 x 4): 184,375 optimiser steps of 64 images, validation and checkpoint
# intervals in optimiser steps; ViTDet's norms are LayerNorms, so the micro-batches change no
# statistic. --auto-scale-lr trains at the cluster's batch with the lr scaled linearly (a quarter
# of the epochs at 16: not the recipe).
train_cfg = dict(_delete_=True, type='RecipeIterBasedTrainLoop', max_iters=max_iters,
                 val_interval=val_interval, total_batch_policy='accumulate')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=milestones,
         gamma=0.1),
]
default_hooks = dict(
    _base_.downstream_hooks,
    logger=dict(interval=50),
    checkpoint=dict(_base_.downstream_hooks.checkpoint, by_epoch=False, interval=val_interval))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=64)
