# Fine-tuning arm of the Fashion-MNIST benchmark: mmpretrain's ImageClassifier on the
# ConMIM ViT-Tiny/4 (mean-pooled patch tokens + norm, linear head), all 60k training images,
# a fixed number of epochs, top-1 on the 10k test images. Without a checkpoint it is the
# random-init arm; with `model.backbone.init_cfg.checkpoint=<pretrain ckpt>` it starts from
# the ConMIM teacher (the official recipe fine-tunes the teacher's weights).
_base_ = ['mmpretrain::_base_/default_runtime.py', './fashion-mnist_base.py']
custom_imports = dict(imports=['conmim_mm'], allow_failed_imports=False)

max_epochs = 1
data_preprocessor = dict(type='ClsDataPreprocessor', num_classes=10, mean={{_base_.mean}},
                         std={{_base_.std}}, to_rgb=False)
train_pipeline = [
    dict(type='NumpyToPIL', to_rgb=False),
    dict(type='torchvision/Grayscale', num_output_channels=3),
    dict(type='PILToNumpy', to_bgr=False),
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='FashionMNIST', data_root={{_base_.data_root}}, test_mode=False,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=500, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='FashionMNIST', data_root={{_base_.data_root}}, split='test', test_mode=True,
                 pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

pretrained = None
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ConMIMViT',
        arch=dict(embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768),
        img_size=28, patch_size=4, with_mask_token=False,
        out_type='avg_featmap', final_norm=False, layer_scale_init_value=0.1,
        use_abs_pos_emb=False, use_rel_pos_bias=False, use_shared_rel_pos_bias=True,
        drop_path_rate=0.1,
        init_cfg=None),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=10, in_channels=192,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
              init_cfg=dict(type='TruncNormal', layer='Linear', std=2e-5)))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
                       custom_keys={'cls_token': dict(decay_mult=0.),
                                    'pos_embed': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=200,
         end=938 * max_epochs),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    divergence=dict(type='DivergenceGuardHook'),  # stop on a NaN loss, never save NaN weights
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1))
randomness = dict(seed=0, diff_rank_seed=True)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
resume = False
