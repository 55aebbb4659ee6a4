# ConMIM arm of the Fashion-MNIST benchmark (docs/results.md): the embedded recipe
# (configs/pretrain/conmim_vit-t-p4_fashion-mnist.py) on the 50k training images (the last 10k
# are the validation split) for the benchmark's epoch budget, with the kNN monitor on the
# teacher (on the validation split). The schedule is in iterations (782 per epoch at batch 64):
# 300 warm-up, then cosine to the end; tools/benchmarks/fashion_mnist.py overrides max_epochs and
# the scheduler ends together.
_base_ = ['../pretrain/conmim_vit-t-p4_fashion-mnist.py']

max_epochs = 2
iters_per_epoch = 782
train_dataloader = dict(dataset=dict(indices=None))  # all 50k training images
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=300),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=300,
         end=iters_per_epoch * max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(max_keep_ckpts=1))
log_processor = dict(window_size=50)
custom_hooks = [dict(type='EpochSeedHook'), dict(_base_.knn_monitor, encoder='teacher')]
resume = False
