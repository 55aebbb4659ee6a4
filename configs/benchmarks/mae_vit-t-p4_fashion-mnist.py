# MAE arm of the Fashion-MNIST benchmark: mmpretrain's MAE (MAEViT encoder that drops 75 % of
# the patches, a light decoder, normalised-pixel L2 loss) on a ViT-Tiny of the same width,
# depth, heads and 4-px patches as the ConMIM arm, with the same crop, flip, optimiser,
# batch, schedule and epoch budget. (MAEViT is mmpretrain's ViT: fixed sin-cos absolute
# position embedding, no layer scale, no relative position bias.)
_base_ = ['mmpretrain::_base_/default_runtime.py', './fashion-mnist_base.py']

max_epochs = 2
data_preprocessor = dict(type='SelfSupDataPreprocessor', mean={{_base_.mean}},
                         std={{_base_.std}}, to_rgb=False)
train_pipeline = [
    dict(type='NumpyToPIL', to_rgb=False),
    dict(type='torchvision/Grayscale', num_output_channels=3),
    dict(type='PILToNumpy', to_bgr=False),
    dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.2, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='FashionMNIST', data_root={{_base_.data_root}}, test_mode=False,
                 pipeline=train_pipeline))

model = dict(
    type='MAE',
    backbone=dict(type='MAEViT',
        arch=dict(embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768),
        img_size=28, patch_size=4, mask_ratio=0.75),
    neck=dict(type='MAEPretrainDecoder', num_patches=49, patch_size=4, in_chans=3,
              embed_dim=192, decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4,
              mlp_ratio=4.),
    head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=4,
              loss=dict(type='PixelReconstructionLoss', criterion='L2')),
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'ln': dict(decay_mult=0.0), 'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.), 'mask_token': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=300),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=300,
         end=938 * max_epochs),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    divergence=dict(type='DivergenceGuardHook'),  # stop on a NaN loss, never save NaN weights
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1))
log_processor = dict(window_size=50)

_knn_loader = dict(batch_size=500, num_workers=0, persistent_workers=False,
                   sampler=dict(type='DefaultSampler', shuffle=False),
                   collate_fn=dict(type='default_collate'))
custom_imports = dict(imports=['conmim_mm'], allow_failed_imports=False)
custom_hooks = [
    dict(type='KNNMonitorHook', interval=1, k=20, encoder='student', pooling='mean',
         bank_dataloader=dict(**_knn_loader, dataset=dict(
             type='FashionMNIST', data_root={{_base_.data_root}}, test_mode=False,
             indices=10000, pipeline={{_base_.test_pipeline}})),
         val_dataloader=dict(**_knn_loader, dataset=dict(
             type='FashionMNIST', data_root={{_base_.data_root}}, split='test', test_mode=True,
             indices=2000, pipeline={{_base_.test_pipeline}}))),
]
randomness = dict(seed=0, diff_rank_seed=True)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
resume = False
