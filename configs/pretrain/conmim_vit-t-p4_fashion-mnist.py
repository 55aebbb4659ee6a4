# The embedded default: ConMIM pretraining of the small ViT of _base_/models/vit-t-p4.py
# (ViT-Tiny width, 6 layers, 4-px patches: 7x7 = 49 patches) on Fashion-MNIST, on a 2-core CPU in
# a few minutes (tools/demo.sh). Same algorithm, views and schedule shape as the ImageNet
# recipes; what changes for 28-px grey images: grey -> 3 channels, crop scale (0.2, 1), the
# model of _base_/models/conmim_vit-t-p4.py (512-wide projector, teacher EMA 0.99 -> 1, pixel-
# identical patches no negatives of each other: the measured reason is there), 4-patch
# minimum mask blocks at ratio 0.4, lr 1e-3 at batch 64, fp32, 3 epochs over 12,800 images.
# Data: `python tools/data/prepare_fashion_mnist.py` (tools/demo.sh does it).
_base_ = [
    '../_base_/models/conmim_vit-t-p4.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/datasets/teacher_view_cpu.py',
    '../_base_/schedules/conmim_pretrain_adamw.py',
    '../_base_/pretrain_runtime.py',
]

data_preprocessor = dict(type='SelfSupDataPreprocessor')

# The ImageNet teacher view (teacher_view_cpu.py) without saturation and hue jitter, which do
# nothing to grey images (mmcv 2.1's hue shift also breaks under numpy 2).
strong_view = [
    dict(_base_.strong_view[0],
         transforms=[dict(_base_.strong_view[0].transforms[0], saturation=0., hue=0.)]),
    *_base_.strong_view[1:],
]
train_pipeline = [
    *_base_.pretrain_crop,
    dict(type='MultiView', num_views=[1, 1], transforms=[[], strong_view]),  # [student, teacher]
    dict(type='ConMIMMaskGenerator', patch_size=_base_.vit_t_p4_patch_size, strategy='block',
         mask_ratio=0.4, min_num_patches=4, input_size=_base_.img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(_base_.pretrain_loader,
                        dataset=dict(_base_.train_set, indices=12800, pipeline=train_pipeline))

optim_wrapper = dict(  # the ImageNet optimiser in fp32 (no AMP on the CPU), lr 1e-3
    _delete_=True,
    type='OptimWrapper',
    constructor=_base_.optim_wrapper.constructor,
    optimizer=dict(_base_.optim_wrapper.optimizer, lr=1e-3),
    paramwise_cfg=_base_.optim_wrapper.paramwise_cfg)

max_epochs = 3
warmup_epochs = 1
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)

default_hooks = dict(logger=dict(interval=10), checkpoint=dict(max_keep_ckpts=2))
log_processor = dict(window_size=10)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
compile = False  # inductor takes minutes to compile on 2 CPU cores: longer than this run
# The recipe's total batch, 64: 2 processes x 32 keep it as it is, 2 x 16 by accumulating 2
# micro-batches (the schedule base's policy); --auto-scale-lr trains 2 x 64 at lr 2e-3.
auto_scale_lr = dict(base_batch_size=64)
