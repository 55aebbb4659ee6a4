"""Image loading that skips an unreadable file instead of ending a days-long run."""
import io
import logging
from typing import List, Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS
from PIL import Image

VERIFY_HINT = ('List every unreadable file with `python tools/misc/verify_dataset.py CONFIG`, '
               'then remove or replace them')


class UnreadableImageError(OSError):
    """An image file that cannot be read: missing, empty, not an image, or cut short."""


class TooManyUnreadableImagesError(RuntimeError):
    """More of the loads failed than ``max_unreadable_share`` allows."""


def _lacks_jpeg_end(img_bytes: bytes) -> bool:
    """A JPEG that does not end with its end-of-image marker: most likely cut short."""
    return img_bytes.startswith(b'\xff\xd8') and not img_bytes.rstrip(b'\0').endswith(b'\xff\xd9')


def _pillow_error(img_bytes: bytes) -> Optional[str]:
    """What Pillow, which is strict about truncation, says when decoding the whole image."""
    try:
        Image.open(io.BytesIO(img_bytes)).load()
    except Exception as err:  # noqa: BLE001 - every decoder error means the same here
        return str(err)
    return None


def _loader_process() -> str:
    from torch.utils.data import get_worker_info
    info = get_worker_info()
    return 'the main process' if info is None else f'dataloader worker {info.id}'


@TRANSFORMS.register_module()
class LoadImageFromFileOrSkip(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that skips a file it cannot read instead of failing.

    A missing, empty, undecodable or truncated file is logged as a warning naming the file,
    the reason and the count so far, and the transform returns ``None``: mmengine's
    ``BaseDataset`` then loads another, random sample in its place (its ``max_refetch``
    mechanism), so the batch stays full.

    The run stops with :class:`TooManyUnreadableImagesError`, naming the files, when more than
    ``max_unreadable_share`` of the loads failed, judged over at least ``min_loads`` loads
    (so with the defaults: more than 10 failures within the first 1000 loads, or more than
    1 % after). Counts are kept per data-loading process: each dataloader worker counts the
    loads it makes, a uniform random part of the dataset under a shuffling sampler, so the
    share it sees estimates the share of the dataset. Non-persistent workers start counting
    afresh every epoch.

    All other arguments are those of ``LoadImageFromFile`` (``to_float32``, ``color_type``,
    ``imdecode_backend``, ``backend_args``...).

    Args:
        max_unreadable_share (float): Largest tolerated share of unreadable loads, in [0, 1].
        min_loads (int): Smallest number of loads the share is judged over.
    """

    def __init__(self, max_unreadable_share: float = 0.01, min_loads: int = 1000,
                 **kwargs) -> None:
        if not 0 <= max_unreadable_share <= 1:
            raise ValueError('max_unreadable_share is a share of the loads, in [0, 1], got '
                             f'{max_unreadable_share}.')
        if min_loads < 1:
            raise ValueError(f'min_loads must be at least 1, got {min_loads}.')
        super().__init__(**kwargs)
        self.max_unreadable_share = max_unreadable_share
        self.min_loads = min_loads
        self.num_loads = 0
        self.num_unreadable = 0
        self.last_unreadable: List[str] = []

    def _get_bytes(self, filename: str) -> bytes:
        if self.file_client_args is not None:
            return fileio.FileClient.infer_client(self.file_client_args, filename).get(filename)
        return fileio.get(filename, backend_args=self.backend_args)

    def read(self, results: dict) -> dict:
        """Load ``results['img_path']`` as ``LoadImageFromFile`` does; raise
        :class:`UnreadableImageError` saying why the file cannot be used."""
        filename = results['img_path']
        try:
            img_bytes = self._get_bytes(filename)
        except Exception as err:  # noqa: BLE001 - any backend error: the file cannot be read
            raise UnreadableImageError(f'cannot read the file ({type(err).__name__}: {err})')
        if not img_bytes:
            raise UnreadableImageError('empty file (0 bytes)')
        try:
            img, error = mmcv.imfrombytes(
                img_bytes, flag=self.color_type, backend=self.imdecode_backend), None
        except Exception as err:  # noqa: BLE001 - any decoder error: not an image
            img, error = None, f'{type(err).__name__}: {err}'
        if img is None and _lacks_jpeg_end(img_bytes):
            raise UnreadableImageError(f'truncated JPEG ({len(img_bytes)} bytes, no end-of-image '
                                       'marker)')
        if img is None:
            detail = error or f'{len(img_bytes)} bytes starting with {img_bytes[:8]!r}'
            raise UnreadableImageError(f'not a decodable image ({detail})')
        # OpenCV may decode a cut JPEG silently, grey at the bottom: ask the strict Pillow
        pillow_error = _pillow_error(img_bytes) if _lacks_jpeg_end(img_bytes) else None
        if pillow_error:
            raise UnreadableImageError(f'truncated JPEG ({pillow_error})')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def transform(self, results: dict) -> Optional[dict]:
        self.num_loads += 1
        try:
            return self.read(results)
        except UnreadableImageError as err:
            reason = str(err)
        self._skip(results['img_path'], reason)  # outside the except: no chained traceback
        return None

    def _skip(self, filename: str, reason: str) -> None:
        self.num_unreadable += 1
        self.last_unreadable = (self.last_unreadable + [f'{filename}: {reason}'])[-10:]
        counts = (f'{self.num_unreadable} unreadable of {self.num_loads} images loaded by '
                  f'{_loader_process()}')
        if self.num_unreadable > self.max_unreadable_share * max(self.num_loads, self.min_loads):
            raise TooManyUnreadableImagesError(
                f'Too many unreadable images: {counts}, more than max_unreadable_share='
                f'{self.max_unreadable_share:g} allows (judged over at least {self.min_loads} '
                'loads). The last ones:\n  ' + '\n  '.join(self.last_unreadable) + '\n'
                f'{VERIFY_HINT}, fix the data path, or raise max_unreadable_share of '
                'LoadImageFromFileOrSkip in the training pipeline.')
        print_log(f'Skipped unreadable image {filename}: {reason} ({counts}; the run stops above '
                  f'{self.max_unreadable_share:.1%})', logger='current', level=logging.WARNING)

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f', max_unreadable_share={self.max_unreadable_share}, '
                f'min_loads={self.min_loads})')


def unreadable_reason(loader: LoadImageFromFile, data_info: dict) -> Optional[str]:
    """Why ``loader`` cannot load the image of ``data_info``, or None when it can.

    mmcv's ``LoadImageFromFile`` and :class:`LoadImageFromFileOrSkip` are checked by the
    strict reader of the latter with the same backend and decoding settings (truncated JPEGs
    included); any other loader by running it.
    """
    if type(loader) is LoadImageFromFile:
        settings = {key: getattr(loader, key) for key in (
            'to_float32', 'color_type', 'imdecode_backend', 'file_client_args', 'backend_args')}
        reader = LoadImageFromFileOrSkip()
        reader.__dict__.update(settings)
        loader = reader
    if isinstance(loader, LoadImageFromFileOrSkip):
        try:
            loader.read(dict(data_info))
        except UnreadableImageError as err:
            return str(err)
        return None
    try:
        out = loader.transform(dict(data_info))
    except Exception as err:  # noqa: BLE001 - report whatever the loader raised
        return f'{type(err).__name__}: {err}'
    return None if out is not None else 'the loader returned nothing'
