"""Let torch >= 2.6's safe checkpoint loading read mmengine's training checkpoints.

torch 2.6 made ``torch.load(weights_only=True)`` the default: only tensors, containers and
allow-listed classes are unpickled. mmengine 0.10.7 calls ``torch.load`` without the argument,
and its checkpoints hold a ``MessageHub`` state with ``HistoryBuffer`` objects and numpy
arrays, so ``--resume`` fails. Allow-listing exactly those classes keeps the protection (a
pretrained file still cannot run code when it is unpickled) while resume works, without any
environment variable.

``HistoryBuffer`` pickles its statistics functions as ``getattr(HistoryBuffer, 'mean')``.
Allowing the real ``getattr`` would let a crafted file fetch any attribute reachable from an
allowed class, so ``builtins.getattr`` is mapped to a stand-in that returns only those
statistics functions and refuses everything else.
"""
import argparse
import importlib
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _numpy_globals() -> list:
    dtypes = {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32,
                                          np.int64, np.uint8, np.bool_)}
    # numpy 2 moved numpy.core to numpy._core; pickles name whichever wrote them.
    multiarrays = []
    for name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            multiarrays.append(importlib.import_module(name))
        except ImportError:
            pass
    funcs = {f for m in multiarrays for f in (m._reconstruct, m.scalar)}
    return [np.ndarray, np.dtype, *funcs, *dtypes]


HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_statistic(owner, name: str):
    """``getattr`` as checkpoints may use it: only ``HistoryBuffer``'s statistics methods."""
    if owner is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'This checkpoint asks for the attribute {name!r} of {owner!r}; only the statistics '
        'methods of mmengine HistoryBuffer may be read while loading weights safely.')


def allow_mmengine_checkpoints() -> None:
    """Allow-list the classes that mmengine writes into training checkpoints, and the
    ``argparse.Namespace`` of the command-line arguments that the official ConMIM/BEiT code
    saves beside the weights (``'args'``): unpickling one only sets attributes of a plain
    namespace, so released checkpoints load without being re-saved."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals([HistoryBuffer, argparse.Namespace, *_numpy_globals(),
                          (history_buffer_statistic, 'builtins.getattr')])
