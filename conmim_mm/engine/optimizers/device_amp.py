"""Mixed precision in the dtype the device does best, chosen when the wrapper is built."""
from typing import Optional, Union

import torch
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS  # the root registry: found from every default scope


@OPTIM_WRAPPERS.register_module()
def DeviceAmpOptimWrapper(dtype: Optional[Union[str, torch.dtype]] = None,
                          loss_scale: Union[str, float, dict] = 'dynamic',
                          **kwargs) -> OptimWrapper:
    """mmengine's ``AmpOptimWrapper`` in the precision the device has, or ``OptimWrapper``.

    * GPUs with native bf16 (Ampere and newer): bf16 autocast without a loss scaler. bf16 has
      fp32's exponent range, so gradients do not underflow, and a scaler would only cost a
      check of every gradient per step (``loss_scale`` becomes a disabled ``GradScaler``).
    * Older GPUs: fp16 autocast with ``loss_scale`` (dynamic loss scaling by default).
    * No GPU: fp32 with a plain ``OptimWrapper`` (``AmpOptimWrapper`` refuses the CPU).

    A ``dtype`` given in the config is kept (``'float16'`` keeps the loss scaler on any GPU).
    The configs' ``optim_wrapper`` names this type, so the choice is the same through
    ``tools/train.py`` (``--amp`` selects it), mmpretrain's ``tools/train.py`` and
    ``Runner.from_cfg``. Returns the wrapper mmengine builds: its checkpoints are those of
    ``AmpOptimWrapper`` (GPU) or ``OptimWrapper`` (CPU).

    Args:
        dtype (str or torch.dtype, optional): Autocast dtype; None picks by the GPU.
        loss_scale (str, float or dict): ``AmpOptimWrapper``'s, for fp16. Default 'dynamic'.
        **kwargs: ``OptimWrapper``'s (``optimizer``, ``clip_grad``, ``accumulative_counts``).
    """
    if not torch.cuda.is_available():
        print_log('No GPU: mixed precision needs one, so this run trains in fp32.',
                  logger='current')
        return OptimWrapper(**kwargs)
    if dtype is None:
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        dtype = 'bfloat16' if native_bf16 else 'float16'
    if dtype in ('bfloat16', torch.bfloat16):
        loss_scale = dict(enabled=False)  # a disabled GradScaler: a no-op
        print_log('AMP: bf16 autocast without a loss scaler.', logger='current')
    else:
        print_log(f'AMP: {dtype} autocast with {loss_scale} loss scaling (this GPU has no '
                  'native bf16).', logger='current')
    return AmpOptimWrapper(dtype=dtype, loss_scale=loss_scale, **kwargs)
