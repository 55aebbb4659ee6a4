# The embedded default: ConMIM pretraining of a small ViT (ViT-Tiny width: 192 wide, 3 heads;
# 6 layers) with 4-px patches on Fashion-MNIST (28x28 grey, 7x7 = 49 patches), on a 2-core CPU
# in a few minutes. Same algorithm, views and schedule shape as the ImageNet recipes; what
# changes for 28-px grey images: grey -> 3 channels, crop scale (0.2, 1), a 512-wide projector
# (4096 would cost several times the backbone at this width), 4-patch minimum mask blocks, fp32,
# and a faster teacher for the short schedule (EMA 0.99 -> 1 instead of 0.996 -> 1: with zero-init
# relative position bias and no absolute positions every mask token starts identical, the loss
# sits at chance until the bias table breaks the symmetry, ~300 iterations here, and a slow
# teacher then barely follows the student within 600 iterations; docs/results.md has the ablation).
# Data: `python tools/data/prepare_fashion_mnist.py` (tools/demo.sh does it).
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['conmim_mm'], allow_failed_imports=False)

img_size = 28
patch_size = 4
data_root = 'data/fashion_mnist/'

data_preprocessor = dict(
    type='SelfSupDataPreprocessor', mean=[72.94] * 3, std=[90.02] * 3, to_rgb=False)

# The ImageNet strong view (BYOL colour jitter, grey, blur, solarize); saturation and hue jitter
# do nothing to grey images, so they are off (mmcv 2.1's hue shift also breaks under numpy 2).
strong_view = [
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0., hue=0.)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
]
train_pipeline = [
    dict(type='NumpyToPIL', to_rgb=False),
    dict(type='torchvision/Grayscale', num_output_channels=3),
    dict(type='PILToNumpy', to_bgr=False),
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.2, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='MultiView', num_views=[1, 1], transforms=[[], strong_view]),
    dict(type='ConMIMMaskGenerator', patch_size=patch_size, strategy='block', mask_ratio=0.4,
         min_num_patches=4, input_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='FashionMNIST', data_root=data_root, test_mode=False,
                 indices=12800, pipeline=train_pipeline))

model = dict(
    type='ConMIM',
    backbone=dict(
        type='ConMIMViT',
        arch=dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768),
        img_size=img_size, patch_size=patch_size,
        out_type='raw', final_norm=True, layer_scale_init_value=0.1,
        use_abs_pos_emb=False, use_rel_pos_bias=False, use_shared_rel_pos_bias=True),
    neck=dict(
        type='NonLinearNeck', in_channels=192, hid_channels=512, out_channels=256,
        num_layers=3, with_bias=False, with_last_bn=True, with_last_bn_affine=False,
        with_avg_pool=False, norm_cfg=dict(type='BN1d')),
    head=dict(type='ConMIMHead', temperature=0.1),
    base_momentum=0.01,
    end_momentum=0.)

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TrainableOptimWrapperConstructor',  # skips the frozen teacher quietly
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.05,
                   fused=True),
    paramwise_cfg=dict(
        norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
        custom_keys={'cls_token': dict(decay_mult=0.), 'pos_embed': dict(decay_mult=0.)}))

max_epochs = 3
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

default_hooks = dict(
    divergence=dict(type='DivergenceGuardHook'),  # stop on a NaN loss, never save NaN weights
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2))
custom_hooks = [dict(type='EpochSeedHook')]
log_processor = dict(window_size=10)
# No sync_bn here: torch's SyncBatchNorm runs on GPUs only, and this config is for the CPU.
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
resume = True
