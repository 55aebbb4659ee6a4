"""Let torch >= 2.6's safe checkpoint loading read mmengine's training checkpoints.

torch 2.6 made ``torch.load(weights_only=True)`` the default: only tensors, containers and
allow-listed classes are unpickled. mmengine 0.10.7 calls ``torch.load`` without the argument,
and its checkpoints hold a ``MessageHub`` state with ``HistoryBuffer`` objects and numpy
arrays, so ``--resume`` fails. Allow-listing exactly those classes keeps the protection (a
pretrained file still cannot run code when it is unpickled) while resume works, without any
environment variable.
"""
import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _numpy_globals() -> list:
    dtypes = {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32,
                                          np.int64, np.uint8, np.bool_)}
    reconstruct = getattr(np, '_core', np.core).multiarray._reconstruct
    return [np.ndarray, np.dtype, reconstruct, np.core.multiarray.scalar, *dtypes]


def allow_mmengine_checkpoints() -> None:
    """Allow-list the classes that mmengine writes into training checkpoints."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals([HistoryBuffer, *_numpy_globals()])
