"""Every mmengine checkpoint scheme, re-registered to unpickle weights-only.

mmengine's loaders (local files, ``http(s)://`` through the torch hub cache, ``torchvision://``,
``open-mmlab://``, ``mmcls://``, ``pavi://``, ``s3://``/``petrel://``) end in ``torch.load`` or in
torch hub's ``load_url``, and ``load_url`` unpickles with ``weights_only=False``: a checkpoint
served over HTTP, or planted in the hub cache, runs code when it is loaded. Importing
``conmim_mm`` registers the loaders below in mmengine's own ``CheckpointLoader`` registry
(``force=True``), under the same prefixes. They resolve names as mmengine does, then unpickle
with ``weights_only=True`` and the package's allow-list (``checkpoint.py``). Whatever goes through
``CheckpointLoader`` is covered: the Runner's ``load_from`` and ``resume``, ``init_cfg`` of type
``Pretrained``, ``mmengine.runner.load_checkpoint`` in third-party code.

A file that fails to load is told apart: one that asks for code is refused as not weights-only
(naming the global or pickle instruction), one that is empty, truncated, damaged or no PyTorch
checkpoint (an ``.npz``) is reported as such (:class:`UnreadableCheckpointError`), without the
advice to trust it. Config text inside a loaded checkpoint is made inert (``stored_config.py``).
"""
import io
import os
import os.path as osp
import pickle
import pickletools
import re
import sys
import warnings
import zipfile
from tempfile import TemporaryDirectory
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .stored_config import make_config_text_inert

ALLOWED = 'tensors, containers, numpy arrays and mmengine HistoryBuffer statistics'


class CheckpointLoadError(Exception):
    """A checkpoint was not loaded; the message says why and what to do."""


class UnsafeCheckpointError(CheckpointLoadError, pickle.UnpicklingError):
    """The checkpoint needs more than tensors and allow-listed classes to be unpickled."""


class UnreadableCheckpointError(CheckpointLoadError, ValueError):
    """The file is empty, truncated, damaged or not a PyTorch checkpoint at all."""


def _refused_global(text: str):
    """What a weights-only refusal asked for, as a reason; None when it names no global."""
    found = re.search(r'GLOBAL (\S+) was not an allowed global', text)
    blocked = re.search(r'GLOBAL (\S+) whose module (\S+) is blocked', text)
    own = re.search(r'asks for the attribute .*? of .*?;', text)
    if found:
        return f'unpickling it needs the global `{found.group(1)}`'
    if blocked:
        name, module = blocked.group(1), blocked.group(2).rstrip('.')
        alias = f', that is `os.{name.split(".", 1)[1]}`' if module in ('posix', 'nt') else ''
        return (f'unpickling it needs the global `{name}`{alias}, from the module `{module}` '
                'that torch never lets a checkpoint use')
    if own:
        return f'it {own.group(0)[:-1]}'
    return None


def _unpickler_reason(text: str) -> str:
    """torch's own reason inside its weights-only message (the line after 'WeightsUnpickler
    error:'), else the message's last line."""
    found = re.search(r'WeightsUnpickler error:\s*(.+)', text)
    if found:
        return found.group(1).strip()
    lines = text.strip().splitlines()
    return lines[-1] if lines else ''


PICKLE_OPCODES = {op.code: op.name for op in pickletools.opcodes}


def classify_unpickling_error(text: str):
    """('unsafe', reason) when the file asks for something the weights-only unpickler refuses,
    ('damaged', reason) when its bytes are no pickle at all."""
    refused = _refused_global(text)
    if refused:
        return 'unsafe', refused
    reason = _unpickler_reason(text)
    operand = re.search(r'Unsupported operand (\d+)', reason)
    if operand:
        code = chr(int(operand.group(1)))
        if code in PICKLE_OPCODES:  # a real instruction, e.g. INST or OBJ: calls code
            return 'unsafe', (f'it uses the pickle instruction {PICKLE_OPCODES[code]}, which '
                              'weights-only loading never runs')
        return 'damaged', (f'byte {operand.group(1)} where a pickle instruction should be: the '
                           'file is damaged or not a PyTorch checkpoint')
    if re.search(r'truncated|ran out of input|unexpected end', reason, re.I):
        return 'damaged', f'it is truncated ({reason})'
    return 'unsafe', 'unpickling it needs more than plain data: ' + reason


def refusal_message(source: str, error: Exception, cached_file: str = None) -> str:
    _, reason = classify_unpickling_error(str(error))
    message = (f'Refused to load the checkpoint {source}: it is not weights-only ({reason}), '
               f'and conmim_mm unpickles only {ALLOWED}, because unpickling anything else can '
               'run code from the file. ')
    if cached_file:
        message += (f'The download is cached at {cached_file} and stays refused at every later '
                    'load; delete it once you have looked at it. ')
    message += ('If you trust where the file comes from, re-save only its weights in a separate '
                "Python session: torch.save({'state_dict': torch.load(PATH, weights_only=False)"
                "['state_dict']}, 'weights.pth') (use the key holding the tensors), and load "
                'weights.pth instead.')
    return message


def _head_and_zip(file):
    """(first bytes, ZipFile or None) of a path or a seekable binary file object."""
    if isinstance(file, (str, os.PathLike)):
        with open(file, 'rb') as f:
            head = f.read(8)
        opened = file if zipfile.is_zipfile(file) else None
    else:
        position = file.tell()
        head = file.read(8)
        file.seek(position)
        opened = file if zipfile.is_zipfile(file) else None
        file.seek(position)
    return head, (zipfile.ZipFile(opened) if opened is not None else None)


def damage(file):
    """Why ``file`` cannot be a whole PyTorch checkpoint, or None when its structure is sound
    (a zip archive holding ``data.pkl`` whose members pass their CRC check, or a non-empty file
    of torch's legacy format, which carries no checksum)."""
    try:
        head, archive = _head_and_zip(file)
    except OSError as err:
        return f'it cannot be read ({err})'
    except zipfile.BadZipFile as err:
        return f'it is a damaged zip archive ({err})'
    if not head:
        return 'the file is empty (0 bytes)'
    if archive is None:
        if head.startswith(b'PK\x03\x04'):
            return ('it is truncated: a zip archive (the format of torch.save) whose end is '
                    'missing, as after an interrupted save, copy or download')
        if head.startswith(b'\x93NUMPY'):
            return 'it is a NumPy .npy array, not a PyTorch checkpoint (read it with numpy.load)'
        return None
    with archive:
        names = archive.namelist()
        if not any(n == 'data.pkl' or n.endswith('/data.pkl') for n in names):
            if names and all(n.endswith('.npy') for n in names):
                return ('it is a NumPy .npz archive, not a PyTorch checkpoint (read it with '
                        'numpy.load and convert the arrays to a state dict of tensors)')
            return ('it is a zip archive without a PyTorch checkpoint inside (no data.pkl; '
                    f'holds {", ".join(names[:3]) or "nothing"})')
        try:
            broken = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            return f'it is truncated or damaged ({err})'
    if broken is not None:
        return f'it is damaged: the member {broken} fails its CRC check'
    return None


def unreadable_message(source: str, reason: str) -> str:
    return (f'Cannot load the checkpoint {source}: {reason}. This is not about trusting the '
            'file (loading it without weights_only would fail as well): copy or download it '
            'again and compare its size with the original, or use another checkpoint.')


def load_weights_only(file, map_location=None, source: str = None, cached_file: str = None):
    """``torch.load(file, weights_only=True)``; a refusal or a damaged file says why and what
    to do. Config text stored in the checkpoint is made inert (``stored_config.py``)."""
    source = source or str(file)
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        kind, reason = classify_unpickling_error(str(err))
        if kind == 'damaged':
            reason = damage(file) or reason
            raise UnreadableCheckpointError(unreadable_message(source, reason)) from err
        raise UnsafeCheckpointError(refusal_message(source, err, cached_file)) from err
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as err:
        reason = damage(file)
        if reason is None:
            if not isinstance(err, EOFError):
                raise
            reason = 'it is truncated (the data ends early)'
        raise UnreadableCheckpointError(unreadable_message(source, reason)) from err
    return make_config_text_inert(checkpoint, source)


def load_from_local(filename, map_location=None):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_weights_only(filename, map_location)


def _download_and_load(url, model_dir=None, map_location=None):
    """torch hub's ``load_state_dict_from_url`` (same cache file), loading weights-only."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    cached_file = osp.join(model_dir, osp.basename(urlparse(url).path))
    if not osp.exists(cached_file):
        os.makedirs(model_dir, exist_ok=True)
        sys.stderr.write(f'Downloading: "{url}" to {cached_file}\n')
        torch.hub.download_url_to_file(url, cached_file, progress=True)
    return load_weights_only(cached_file, map_location, source=url, cached_file=cached_file)


def load_from_http(filename, map_location=None, model_dir=None):
    """Download once (rank 0 first, as mmengine does) into the hub cache, load weights-only."""
    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = _download_and_load(filename, model_dir, map_location)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = _download_and_load(filename, model_dir, map_location)
    return checkpoint


def load_from_torchvision(filename, map_location=None):
    model_name = filename.split('://', 1)[1]
    if filename.startswith('modelzoo://'):
        warnings.warn('The URL scheme of "modelzoo://" is deprecated, please use '
                      '"torchvision://" instead', DeprecationWarning)
    url = mmengine_checkpoint.get_torchvision_models()[model_name]
    return load_from_http(url, map_location=map_location)


def load_from_openmmlab(filename, map_location=None):
    prefix, model_name = filename.split('://', 1)
    deprecated = mmengine_checkpoint.get_deprecated_model_names()
    if model_name in deprecated:
        warnings.warn(f'{prefix}://{model_name} is deprecated in favor of '
                      f'{prefix}://{deprecated[model_name]}', DeprecationWarning)
        model_name = deprecated[model_name]
    model_url = mmengine_checkpoint.get_external_models()[model_name]
    if model_url.startswith(('http://', 'https://')):
        return load_from_http(model_url, map_location=map_location)
    return load_from_local(osp.join(mmengine_checkpoint._get_mmengine_home(), model_url),
                           map_location)


def load_from_mmcls(filename, map_location=None):
    url = mmengine_checkpoint.get_mmcls_models()[filename[len('mmcls://'):]]
    checkpoint = load_from_http(url, map_location=map_location)
    return mmengine_checkpoint._process_mmcls_checkpoint(checkpoint)


def load_from_pavi(filename, map_location=None):
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError('Please install pavi to load checkpoint from modelcloud.')
    model = modelcloud.get(filename[len('pavi://'):])
    with TemporaryDirectory() as tmp_dir:
        downloaded = osp.join(tmp_dir, model.name)
        model.download(downloaded)
        return load_weights_only(downloaded, map_location, source=filename)


def load_from_ceph(filename, map_location=None, backend='petrel'):
    file_backend = get_file_backend(filename, backend_args={'backend': backend})
    with io.BytesIO(file_backend.get(filename)) as buffer:
        return load_weights_only(buffer, map_location, source=filename)


# The prefixes exactly as mmengine registers them, so that each replaces mmengine's loader.
WEIGHTS_ONLY_SCHEMES = {
    '': load_from_local,
    ('http://', 'https://'): load_from_http,
    'pavi://': load_from_pavi,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    'mmcls://': load_from_mmcls,
}


def register_weights_only_loaders() -> None:
    """Replace every loader in mmengine's ``CheckpointLoader`` by its weights-only version."""
    for prefixes, loader in WEIGHTS_ONLY_SCHEMES.items():
        CheckpointLoader.register_scheme(prefixes, loader, force=True)
