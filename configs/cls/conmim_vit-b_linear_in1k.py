# Linear probing of a ConMIM ViT-B/16 on ImageNet-1K: frozen backbone (final norm included), mean
# of the patch tokens (ConMIM trains no [CLS] objective), a BatchNorm without affine parameters
# and one linear layer, trained with LARS as in mmpretrain's MAE linear-probe benchmark (90
# epochs, 10 warm-up, lr 6.4 at batch 16384 = 8 GPUs x 2048, no weight decay). The paper reports
# no linear-probe number.
#
#   python tools/train.py configs/cls/conmim_vit-b_linear_in1k.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PRETRAIN.pth
_base_ = [
    '../_base_/models/conmim_vit-b-p16_downstream.py',
    'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/downstream_runtime.py',
]
model = dict(
    type='ImageClassifier',
    backbone=dict(
        _base_.conmim_backbone,
        drop_path_rate=0.,
        final_norm=True,
        frozen_stages=12),  # every block (and its relative position table) and the final norm
    neck=[
        dict(type='GlobalAveragePooling'),
        dict(type='ClsBatchNormNeck', input_features=_base_.embed_dims),
    ],
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=_base_.embed_dims,
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]))

# One unreadable image is skipped (named in the log) instead of ending a days-long run.
train_pipeline = [dict(type='LoadImageFromFileOrSkip', max_unreadable_share=0.01),
                  *_base_.train_pipeline[1:]]
# What mmpretrain's tools/train.py would add, stated, so that every launcher loads the same way.
loader_settings = dict(persistent_workers=True, pin_memory=True,
                       collate_fn=dict(type='default_collate'))
train_dataloader = dict(batch_size=2048, drop_last=True, **loader_settings,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(drop_last=False, **loader_settings)
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='DeviceAmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='LARS', lr=6.4, weight_decay=0.0, momentum=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=80, by_epoch=True, begin=10, end=90, eta_min=0.,
         convert_to_iter_based=True),
]
# total batch 16384 (auto_scale_lr), kept by gradient accumulation on smaller clusters
train_cfg = dict(type='RecipeEpochBasedTrainLoop', max_epochs=90,
                 total_batch_policy='accumulate')
default_hooks = dict(
    _base_.downstream_hooks,
    checkpoint=dict(_base_.downstream_hooks.checkpoint, max_keep_ckpts=3),
    logger=dict(type='LoggerHook', interval=10))
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=16384)
