# The hooks every downstream config (classification, linear probe, segmentation, detection) adds
# to its host library's default_runtime, so that tools/train.py, the host library's
# tools/train.py and Runner.from_cfg run the same:
#
#   _base_ = [..., '../_base_/downstream_runtime.py']
#   default_hooks = _base_.downstream_hooks
#
# A named variable, not `default_hooks` itself: the host bases (mmpretrain's, mmseg's, mmdet's
# default_runtime) define `default_hooks`, and mmengine refuses a key that two bases of one config
# both define. A config's own value of one hook merges as usual, e.g.
#   default_hooks = dict(_base_.downstream_hooks,
#                        checkpoint=dict(_base_.downstream_hooks.checkpoint, max_keep_ckpts=3))
downstream_hooks = dict(
    # log values stay on the device until the logger reads them (no wait for the GPU per step)
    runtime_info=dict(type='DeviceLogRuntimeInfoHook'),
    # carries out `compile=True` (off unless a config or --cfg-options sets it): extract_feat
    # compiled, the optimiser update eager
    compile=dict(type='CompileModelHook'),
    divergence=dict(type='DivergenceGuardHook'),  # stop on a NaN loss, never save NaN weights
    # written to a temporary name and renamed: a kill or a full disk never costs a checkpoint;
    # the interval is the host runtime's (every epoch; mmseg: every 16k iterations)
    checkpoint=dict(type='AtomicCheckpointHook', max_keep_ckpts=2))
