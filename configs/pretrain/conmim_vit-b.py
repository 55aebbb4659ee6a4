# ConMIM ViT-B/16 pretraining on ImageNet-1K, 800 epochs (paper Table 1: 83.7 top-1 after
# fine-tuning). 32 GPUs x 64 images = 2048; lr is scaled by auto_scale_lr for other batches.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/datasets/imagenet_conmim.py',
]
custom_imports = dict(imports=['conmim_mm'], allow_failed_imports=False)

model = dict(
    type='ConMIM',
    backbone=dict(
        type='ConMIMViT',
        arch='base',
        img_size=224,
        patch_size=16,
        out_type='raw',
        final_norm=True,
        drop_path_rate=0.,
        layer_scale_init_value=0.1,
        use_abs_pos_emb=False,
        use_rel_pos_bias=False,
        use_shared_rel_pos_bias=True),
    # Token projector (student and teacher each own one): Linear-BN-ReLU x2, Linear-BN (no
    # affine), no biases, applied to every token. `sync_bn` below makes it SyncBN when
    # distributed.
    neck=dict(
        type='NonLinearNeck',
        in_channels=768,
        hid_channels=4096,
        out_channels=256,
        num_layers=3,
        with_bias=False,
        with_last_bn=True,
        with_last_bn_affine=False,
        with_avg_pool=False,
        norm_cfg=dict(type='BN1d')),
    head=dict(type='ConMIMHead', temperature=0.1),
    base_momentum=0.004,  # teacher coefficient 0.996 ...
    end_momentum=0.)      # ... rising to 1.0 on a cosine over all iterations

# AdamW, no weight decay on 1-D parameters (norms, biases, q/v bias, layer scale) or the
# [CLS] / position tokens; AMP.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    constructor='TrainableOptimWrapperConstructor',  # skips the frozen teacher quietly
    # fused=True: one kernel for all parameters (same maths; ~15 % faster steps measured on
    # an H200 at ViT-B/16, docs/benchmarks.md)
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.05,
                   fused=True),
    paramwise_cfg=dict(
        norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
        custom_keys={'cls_token': dict(decay_mult=0.), 'pos_embed': dict(decay_mult=0.)}))

max_epochs = 800
warmup_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

default_hooks = dict(
    divergence=dict(type='DivergenceGuardHook'),  # stop on a NaN loss, never save NaN weights
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3))
custom_hooks = [dict(type='EpochSeedHook')]
# torch.compile of both encoders and the InfoNCE as one graph (tools/train.py turns this into
# CompileModelHook; the step-only benchmark measured 1.35x the eager step on an H200,
# docs/benchmarks.md). `--cfg-options compile=False` turns it off.
compile = True
sync_bn = 'torch'  # the projector's BN becomes SyncBN when the run is distributed
randomness = dict(seed=0, diff_rank_seed=True)
resume = True  # continue from the last checkpoint in work_dir after a crash
auto_scale_lr = dict(base_batch_size=2048)
