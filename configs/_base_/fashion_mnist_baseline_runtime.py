# Schedule and runtime shared by the MIM baseline arms of the Fashion-MNIST benchmark (MAE and
# SimMIM, configs/benchmarks/): 2 epochs over the 50k training images at batch 64 (782 iterations
# each), 300 linear warm-up iterations then cosine to 1e-5, as the ConMIM arm; the reliability
# hooks of the ConMIM runs; tools/benchmarks/fashion_mnist.py overrides the budget.
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['conmim_mm'], allow_failed_imports=False)

max_epochs = 2
iters_per_epoch = 782
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=300),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=300,
         end=iters_per_epoch * max_epochs),
]
train_cfg = dict(type='RecipeEpochBasedTrainLoop', max_epochs=max_epochs,
                 total_batch_policy='accumulate')
auto_scale_lr = dict(base_batch_size=64)  # the recipe's total batch (1 process x 64)
default_hooks = dict(
    runtime_info=dict(type='DeviceLogRuntimeInfoHook'),  # log values read once per log line
    compile=dict(type='CompileModelHook'),  # carries out compile=True (off by default)
    divergence=dict(type='DivergenceGuardHook'),  # stop on a NaN loss, never save NaN weights
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1))
log_processor = dict(window_size=50)
randomness = dict(seed=0, diff_rank_seed=True)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
