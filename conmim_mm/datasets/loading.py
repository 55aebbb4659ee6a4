"""Image and annotation loading that skips an unreadable file instead of ending a days-long run."""
import io
import logging
import re
import warnings
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
    """An image file that cannot be read: missing, empty, not an image, cut short or too large."""


class TooManyUnreadableFilesError(RuntimeError):
    """More of the loads failed than ``max_unreadable_share`` allows."""


class TooManyUnreadableImagesError(TooManyUnreadableFilesError):
    """More of the image loads failed than ``max_unreadable_share`` allows."""


# Pillow's default ``MAX_IMAGE_PIXELS`` (its decompression-bomb warning): 256 MiB as 8-bit BGR.
DEFAULT_MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def loggable(text: str) -> str:
    """``text`` with the undecodable bytes of a file name (which Python keeps as lone
    surrogates) written as ``\\xNN``, so that a UTF-8 log file or console can hold it."""
    try:
        return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
    except UnicodeEncodeError:  # lone surrogates that stand for no byte
        return text.encode('utf-8', 'backslashreplace').decode('utf-8')


def _cut_format(img_bytes: bytes) -> Optional[str]:
    """'JPEG' or 'PNG' when the file is one whose end marker is missing (cut short), else None."""
    tail = img_bytes.rstrip(b'\0')
    if img_bytes.startswith(b'\xff\xd8') and not tail.endswith(b'\xff\xd9'):
        return 'JPEG'
    if img_bytes.startswith(_PNG_SIGNATURE) and not tail.endswith(b'IEND\xaeB`\x82'):
        return 'PNG'
    return None


def _pillow_error(img_bytes: bytes) -> Optional[str]:
    """What Pillow, which is strict about truncation, says when decoding the whole image."""
    try:
        Image.open(io.BytesIO(img_bytes)).load()
    except Exception as err:  # noqa: BLE001 - every decoder error means the same here
        return str(err)
    return None


def _check_pixel_count(img_bytes: bytes, max_pixels: Optional[int]) -> None:
    """Refuse an image of more than ``max_pixels`` pixels from its header, before decoding it.

    OpenCV decodes any size (a 249 KB PNG of 16000x16000 becomes 768 MB); Pillow reads the size
    without decoding. Files Pillow cannot identify are left to the decoder.
    """
    if max_pixels is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(img_bytes)) as img:
                width, height = img.size
        except Image.DecompressionBombError as err:
            # above twice Pillow's MAX_IMAGE_PIXELS, Pillow refuses and says only the count
            if max_pixels >= 2 * Image.MAX_IMAGE_PIXELS:
                return
            count = re.search(r'\((\d+) pixels\)', str(err))
            size = f'{count.group(1)} pixels' if count else f'{err}'
        except Exception:  # noqa: BLE001 - not identified by Pillow: the decoder decides
            return
        else:
            if width * height <= max_pixels:
                return
            size = f'{width}x{height} = {width * height} pixels'
    raise UnreadableImageError(f'too large to decode: {size}, more than max_pixels={max_pixels} '
                               'of the loading transform (raise it to load such images)')


def decode_image(img_bytes: bytes, flag: str = 'color', backend: Optional[str] = None,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``mmcv.imfrombytes`` that raises :class:`UnreadableImageError` saying why the bytes are
    no usable image: empty, not decodable, cut short (also when the decoder would return a
    partly grey image) or more than ``max_pixels`` pixels (checked before decoding)."""
    if not img_bytes:
        raise UnreadableImageError('empty file (0 bytes)')
    _check_pixel_count(img_bytes, max_pixels)
    try:
        img, error = mmcv.imfrombytes(img_bytes, flag=flag, backend=backend), None
    except Exception as err:  # noqa: BLE001 - any decoder error: not an image
        img, error = None, f'{type(err).__name__}: {err}'
    cut = _cut_format(img_bytes)
    if img is None and cut:
        end = 'end-of-image marker' if cut == 'JPEG' else 'IEND chunk'
        raise UnreadableImageError(f'truncated {cut} ({len(img_bytes)} bytes, no {end})')
    if img is None:
        detail = error or f'{len(img_bytes)} bytes starting with {img_bytes[:8]!r}'
        raise UnreadableImageError(f'not a decodable image ({detail})')
    # OpenCV may decode a cut file silently, grey at the bottom: ask the strict Pillow
    pillow_error = _pillow_error(img_bytes) if cut else None
    if pillow_error:
        raise UnreadableImageError(f'truncated {cut} ({pillow_error})')
    return img


def read_file_bytes(filename: str, backend_args: Optional[dict] = None,
                    file_client_args: Optional[dict] = None) -> bytes:
    """The bytes of ``filename`` through mmengine's file backends, or
    :class:`UnreadableImageError` saying why they cannot be read."""
    try:
        if file_client_args is not None:
            return fileio.FileClient.infer_client(file_client_args, filename).get(filename)
        return fileio.get(filename, backend_args=backend_args)
    except Exception as err:  # noqa: BLE001 - any backend error: the file cannot be read
        raise UnreadableImageError(f'cannot read the file ({type(err).__name__}: {err})')


def _loader_process() -> str:
    from torch.utils.data import get_worker_info
    info = get_worker_info()
    return 'the main process' if info is None else f'dataloader worker {info.id}'


class SkipsUnreadableFiles:
    """The counting, warnings and stop rule of the loading transforms that skip a sample whose
    file they cannot read (:class:`LoadImageFromFileOrSkip`, ``LoadAnnotationsOrSkip`` of
    ``conmim_mm.seg`` / ``conmim_mm.det``).

    A skipped file is logged as a warning naming the file, the reason and the count so far;
    the run stops with ``too_many_error``, naming the last files, when more than
    ``max_unreadable_share`` of the loads failed, judged over at least ``min_loads`` loads.
    Counts are kept per transform and data-loading process.
    """
    kind = 'file'  # what a load reads, in the messages
    too_many_error = TooManyUnreadableFilesError

    def _init_skipping(self, max_unreadable_share: float, min_loads: int) -> None:
        if not 0 <= max_unreadable_share <= 1:
            raise ValueError('max_unreadable_share is a share of the loads, in [0, 1], got '
                             f'{max_unreadable_share}.')
        if min_loads < 1:
            raise ValueError(f'min_loads must be at least 1, got {min_loads}.')
        self.max_unreadable_share = max_unreadable_share
        self.min_loads = min_loads
        self.num_loads = 0
        self.num_unreadable = 0
        self.last_unreadable: List[str] = []

    def _skip(self, filename: str, reason: str) -> None:
        self.num_unreadable += 1
        entry = loggable(f'{filename}: {reason}')
        self.last_unreadable = (self.last_unreadable + [entry])[-10:]
        counts = (f'{self.num_unreadable} unreadable of {self.num_loads} {self.kind}s loaded by '
                  f'{_loader_process()}')
        if self.num_unreadable > self.max_unreadable_share * max(self.num_loads, self.min_loads):
            raise self.too_many_error(
                f'Too many unreadable {self.kind}s: {counts}, more than max_unreadable_share='
                f'{self.max_unreadable_share:g} allows (judged over at least {self.min_loads} '
                'loads). The last ones:\n  ' + '\n  '.join(self.last_unreadable) + '\n'
                f'{VERIFY_HINT}, fix the data path, or raise max_unreadable_share of '
                f'{type(self).__name__} in the training pipeline.')
        print_log(f'Skipped unreadable {self.kind} {entry} ({counts}; the run stops above '
                  f'{self.max_unreadable_share:.1%})', logger='current', level=logging.WARNING)


@TRANSFORMS.register_module()
class LoadImageFromFileOrSkip(SkipsUnreadableFiles, LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that skips a file it cannot read instead of failing.

    A missing, empty, undecodable, truncated or too large file is logged as a warning naming
    the file, the reason and the count so far, and the transform returns ``None``: mmengine's
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
    ``imdecode_backend``, ``backend_args``...). Registered in mmpretrain's, mmseg's
    (``conmim_mm.seg``) and mmdet's (``conmim_mm.det``) registries.

    Args:
        max_unreadable_share (float): Largest tolerated share of unreadable loads, in [0, 1].
        min_loads (int): Smallest number of loads the share is judged over.
        max_pixels (int, optional): Images of more pixels are skipped, judged from the file's
            header before decoding (OpenCV would decode any size). Defaults to Pillow's
            ``MAX_IMAGE_PIXELS`` (89.5 M pixels, 256 MiB as 8-bit BGR); None: no bound.
    """
    kind = 'image'
    too_many_error = TooManyUnreadableImagesError

    def __init__(self, max_unreadable_share: float = 0.01, min_loads: int = 1000,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, **kwargs) -> None:
        if max_pixels is not None and max_pixels < 1:
            raise ValueError(f'max_pixels must be at least 1 (or None: no bound), got '
                             f'{max_pixels}.')
        self._init_skipping(max_unreadable_share, min_loads)
        super().__init__(**kwargs)
        self.max_pixels = max_pixels

    def read(self, results: dict) -> dict:
        """Load ``results['img_path']`` as ``LoadImageFromFile`` does; raise
        :class:`UnreadableImageError` saying why the file cannot be used."""
        img_bytes = read_file_bytes(results['img_path'], self.backend_args, self.file_client_args)
        img = decode_image(img_bytes, self.color_type, self.imdecode_backend, self.max_pixels)
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

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f', max_unreadable_share={self.max_unreadable_share}, '
                f'min_loads={self.min_loads}, max_pixels={self.max_pixels})')


class SkipsUnreadableAnnotations(SkipsUnreadableFiles):
    """Mixed into a library's ``LoadAnnotations``: a sample whose annotation file (the
    segmentation map of ``with_seg``) cannot be read is skipped like an unreadable image.

    Only failures that a strict read of the file explains are skipped (missing, empty, not
    decodable, truncated); any other error of the library's transform propagates.

    Args:
        max_unreadable_share (float): Largest tolerated share of unreadable loads, in [0, 1].
        min_loads (int): Smallest number of loads the share is judged over.
    """
    kind = 'annotation file'

    def __init__(self, max_unreadable_share: float = 0.01, min_loads: int = 1000,
                 **kwargs) -> None:
        self._init_skipping(max_unreadable_share, min_loads)
        super().__init__(**kwargs)

    def transform(self, results: dict) -> Optional[dict]:
        self.num_loads += 1
        try:
            return super().transform(results)
        except Exception as err:  # noqa: BLE001 - kept only when the file explains it
            reason, failure = unreadable_annotation_reason(self, results), err
        if reason is None:
            raise failure
        self._skip(results['seg_map_path'], reason)
        return None


def unreadable_annotation_reason(loader, data_info: dict) -> Optional[str]:
    """Why the annotation file that ``loader`` (an mmcv/mmseg/mmdet ``LoadAnnotations``) reads
    for ``data_info`` cannot be used, or None when it can or when it reads no file."""
    path = data_info.get('seg_map_path') if getattr(loader, 'with_seg', False) else None
    if path is None:
        return None
    try:
        img_bytes = read_file_bytes(path, getattr(loader, 'backend_args', None),
                                    getattr(loader, 'file_client_args', None))
        # decoded as the library does it (Pillow by default, with its own size limit)
        decode_image(img_bytes, 'unchanged', getattr(loader, 'imdecode_backend', None),
                     max_pixels=None)
    except UnreadableImageError as err:
        return str(err)
    return None


def unreadable_reason(loader: LoadImageFromFile, data_info: dict) -> Optional[str]:
    """Why ``loader`` cannot load the image of ``data_info``, or None when it can.

    mmcv's ``LoadImageFromFile`` and :class:`LoadImageFromFileOrSkip` are checked by the
    strict reader of the latter with the same backend and decoding settings (truncated JPEGs
    and PNGs, and the pixel bound, included); any other loader by running it.
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
