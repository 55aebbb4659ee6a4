# ConMIM arm of the Fashion-MNIST benchmark: the embedded default recipe
# (configs/pretrain/conmim_vit-t-p4_fashion-mnist.py) on all 60k training images, for the
# benchmark's epoch budget, with the kNN monitor (teacher, 10k training / 2k test images).
# The schedule is in iterations (938 per epoch at batch 64): 300 warm-up, then cosine to the
# end. tools/benchmarks/fashion_mnist.py sets train_cfg.max_epochs and param_scheduler.1.end
# together.
_base_ = ['../pretrain/conmim_vit-t-p4_fashion-mnist.py']

test_pipeline = [  # grey -> 3 channels, nothing else
    dict(type='NumpyToPIL', to_rgb=False),
    dict(type='torchvision/Grayscale', num_output_channels=3),
    dict(type='PILToNumpy', to_bgr=False),
    dict(type='PackInputs'),
]

max_epochs = 2
train_dataloader = dict(batch_size=64, num_workers=1, dataset=dict(indices=None))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=300),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=300,
         end=938 * max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    divergence=dict(type='DivergenceGuardHook'),  # stop on a NaN loss, never save NaN weights
    logger=dict(interval=50),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1))
log_processor = dict(window_size=50)

_knn_loader = dict(batch_size=500, num_workers=0, persistent_workers=False,
                   sampler=dict(type='DefaultSampler', shuffle=False),
                   collate_fn=dict(type='default_collate'))
custom_hooks = [
    dict(type='EpochSeedHook'),
    dict(type='KNNMonitorHook', interval=1, k=20, encoder='teacher', pooling='mean',
         bank_dataloader=dict(**_knn_loader, dataset=dict(
             type='FashionMNIST', data_root={{_base_.data_root}}, test_mode=False,
             indices=10000, pipeline=test_pipeline)),
         val_dataloader=dict(**_knn_loader, dataset=dict(
             type='FashionMNIST', data_root={{_base_.data_root}}, split='test', test_mode=True,
             indices=2000, pipeline=test_pipeline))),
]
resume = False
