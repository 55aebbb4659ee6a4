# What every ConMIM pretraining run shares beyond the model and the data: the plugin import,
# checkpoints every epoch with automatic resume after a crash, per-epoch re-seeding of crops
# and masks (exact resume), per-rank seeds. Run-wide pretraining settings (extra default hooks,
# compile, ...) belong here, so that every launcher runs the same (tools/train.py, mmpretrain's
# tools/train.py, Runner.from_cfg).
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['conmim_mm'], allow_failed_imports=False)
default_hooks = dict(
    # log values stay on the device until the logger reads them (no wait for the GPU per step)
    runtime_info=dict(type='DeviceLogRuntimeInfoHook'),
    compile=dict(type='CompileModelHook'),  # carries out `compile` below
    divergence=dict(type='DivergenceGuardHook'),  # stop on a NaN loss, never save NaN weights
    logger=dict(type='LoggerHook', interval=100),
    # written to a temporary name and renamed: a kill or a full disk never costs a checkpoint
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3))
custom_hooks = [dict(type='EpochSeedHook')]
randomness = dict(seed=0, diff_rank_seed=True)
resume = True  # continue from the last checkpoint in work_dir after a crash
# Per-GPU BatchNorm in the projectors, as the official code (its statistics are each GPU's
# 64 images). sync_bn='torch' is the switch for SyncBN (GPUs only; dynamo breaks the compiled
# loss at every SyncBatchNorm, docs/pretraining.md).
sync_bn = None
# torch.compile of both encoders and the InfoNCE as one graph, the optimiser update eager
# (default_hooks.compile; 1.4x the eager step on an H200, docs/benchmarks.md). compile=False turns
# it off; compile=dict(backend=..., mode=...) passes options to torch.compile.
compile = True
