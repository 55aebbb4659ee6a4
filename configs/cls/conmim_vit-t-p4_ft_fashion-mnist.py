# The embedded demo's downstream step: fine-tune the ViT-T/4 pretrained by
# configs/pretrain/conmim_vit-t-p4_fashion-mnist.py on Fashion-MNIST's labels (60k train, 10k
# test) and evaluate top-1 with mmpretrain's Accuracy. Same ingredients as the ImageNet recipe
# (teacher weights, layer decay 0.65, drop path 0.1, mean pooling, label smoothing, AdamW with
# warm-up + cosine), scaled to 28x28 grey images on the CPU: crop + flip only, no mixup, 10 epochs.
#
#   python tools/model_converters/extract_backbone.py work_dirs/conmim_vit-t-p4_fashion-mnist/epoch_6.pth teacher.pth
#   python tools/train.py configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=teacher.pth
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['conmim_mm'], allow_failed_imports=False)

img_size = 28
patch_size = 4
data_root = 'data/fashion_mnist/'

data_preprocessor = dict(num_classes=10, mean=[72.94] * 3, std=[90.02] * 3, to_rgb=False)
grey_to_rgb = [
    dict(type='NumpyToPIL', to_rgb=False),
    dict(type='torchvision/Grayscale', num_output_channels=3),
    dict(type='PILToNumpy', to_bgr=False),
]
train_pipeline = [
    *grey_to_rgb,
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [*grey_to_rgb, dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=128, num_workers=1, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='FashionMNIST', data_root=data_root, test_mode=False,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256, num_workers=1, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='FashionMNIST', data_root=data_root, split='test', test_mode=True,
                 pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ConMIMViT',
        arch=dict(embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768),
        img_size=img_size, patch_size=patch_size,
        drop_path_rate=0.1, out_type='avg_featmap', final_norm=False,
        layer_scale_init_value=0.1, use_abs_pos_emb=False,
        use_rel_pos_bias=True, use_shared_rel_pos_bias=False, with_mask_token=False,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=None,
    head=dict(
        type='LinearClsHead', num_classes=10, in_channels=192,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.02 * 1e-3)]))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
        custom_keys={'.cls_token': dict(decay_mult=0.), '.pos_embed': dict(decay_mult=0.)}))

max_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    divergence=dict(type='DivergenceGuardHook'),  # stop on a NaN loss, never save NaN weights
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1))
log_processor = dict(window_size=10)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
