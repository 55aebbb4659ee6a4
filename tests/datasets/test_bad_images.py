"""One bad image does not end a run: it is skipped, named and counted; too many stop the run."""
import glob
import io
import logging
import os

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger
from PIL import Image

from conmim_mm.datasets import (LoadImageFromFileOrSkip, TooManyUnreadableImagesError,
                                unreadable_reason)
from tests.helpers.images import huge_png
from tests.helpers.paths import ROOT
from tests.helpers.tools import tool_fails, tool_main

DEMO = os.path.join(ROOT, 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py')


def jpeg_bytes(size=(48, 40), mode='RGB', seed=0):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.convert(mode).save(buf, format='JPEG')
    return buf.getvalue()


def write_good_images(folder):
    """Readable files of every kind an ImageNet folder holds: all must load as BGR uint8."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1)
    files = {
        'rgb.JPEG': jpeg_bytes(seed=1),
        'grey.JPEG': jpeg_bytes(mode='L', seed=2),
        'cmyk.JPEG': jpeg_bytes(mode='CMYK', seed=3),
        'tiny.JPEG': jpeg_bytes(size=(1, 1), seed=4),
    }
    for name, data in files.items():
        with open(os.path.join(folder, name), 'wb') as f:
            f.write(data)
    Image.fromarray(rng.integers(0, 255, (30, 30, 4), dtype=np.uint8), 'RGBA').save(
        os.path.join(folder, 'rgba.png'))
    cv2.imwrite(os.path.join(folder, 'deep16.png'), rng.integers(0, 65535, (30, 30, 3),
                                                                 dtype=np.uint16))
    return sorted(os.path.join(folder, name) for name in os.listdir(folder))


BAD = {  # name -> (bytes, what the reason must say)
    'truncated.JPEG': (jpeg_bytes(size=(64, 64), seed=5)[:1500], 'truncated JPEG'),
    'corrupt.JPEG': (b'\xff\xd8' + bytes(range(256)) * 8 + b'\xff\xd9', 'not a decodable image'),
    'text.JPEG': (b'this is a text file, not an image\n' * 10, 'not a decodable image'),
    'empty.JPEG': (b'', 'empty file (0 bytes)'),
}


def write_bad_images(folder):
    os.makedirs(folder, exist_ok=True)
    for name, (data, _) in BAD.items():
        with open(os.path.join(folder, name), 'wb') as f:
            f.write(data)
    return sorted(os.path.join(folder, name) for name in BAD)


def test_every_readable_kind_loads_as_three_channel_uint8(tmp_path):
    loader = LoadImageFromFileOrSkip()
    for path in write_good_images(str(tmp_path)):
        out = loader(dict(img_path=path))
        assert out is not None, path
        assert out['img'].dtype == np.uint8 and out['img'].ndim == 3 and out['img'].shape[2] == 3
    assert loader.num_unreadable == 0


def test_each_bad_file_is_skipped_with_a_warning_naming_it(tmp_path):
    logger = MMLogger.get_instance('bad_images_unit', log_level='WARNING')
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    loader = LoadImageFromFileOrSkip(max_unreadable_share=0.5, min_loads=100)
    try:
        for path in write_bad_images(str(tmp_path)):
            assert loader(dict(img_path=path)) is None
            reason = BAD[os.path.basename(path)][1]
            assert unreadable_reason(LoadImageFromFileOrSkip(), dict(img_path=path)).startswith(
                reason)
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert len(messages) == len(BAD)
    for i, (path, message) in enumerate(zip(sorted(BAD), messages), 1):
        assert path in message and BAD[path][1] in message
        assert f'{i} unreadable of {i} images loaded by the main process' in message


def test_a_cut_jpeg_that_opencv_would_decode_is_still_refused(tmp_path, monkeypatch):
    # Some OpenCV builds decode a cut JPEG silently (grey at the bottom); Pillow decides.
    path = write_bad_images(str(tmp_path))[-1]
    assert path.endswith('truncated.JPEG')
    import conmim_mm.datasets.loading as loading
    monkeypatch.setattr(loading.mmcv, 'imfrombytes', lambda *a, **k: np.zeros((8, 8, 3), np.uint8))
    reason = unreadable_reason(LoadImageFromFileOrSkip(), dict(img_path=path))
    assert reason.startswith('truncated JPEG (image file is truncated')
    good = write_good_images(str(tmp_path / 'good'))
    assert all(unreadable_reason(LoadImageFromFileOrSkip(), dict(img_path=p)) is None for p in good)


def test_too_many_unreadable_files_stop_with_a_clear_message(tmp_path):
    good = write_good_images(str(tmp_path / 'good'))
    bad = write_bad_images(str(tmp_path / 'bad'))
    loader = LoadImageFromFileOrSkip(max_unreadable_share=0.1, min_loads=20)
    for path in good * 3:  # 18 good loads
        assert loader(dict(img_path=path)) is not None
    assert loader(dict(img_path=bad[0])) is None
    assert loader(dict(img_path=bad[1])) is None  # 2 of 20: at the limit, not above
    with pytest.raises(TooManyUnreadableImagesError, match=r'3 unreadable of 21 images') as err:
        loader(dict(img_path=bad[2]))
    assert all(path in str(err.value) for path in bad[:3])
    assert 'tools/misc/verify_dataset.py' in str(err.value)


def test_an_image_of_too_many_pixels_is_skipped_from_its_header(tmp_path, monkeypatch):
    huge = tmp_path / 'huge.png'
    huge.write_bytes(huge_png())
    assert len(huge_png()) < 250_000  # 249 KB on disk
    import conmim_mm.datasets.loading as loading

    def no_decoding(*args, **kwargs):
        raise AssertionError('the image was decoded')
    with monkeypatch.context() as patch:
        patch.setattr(loading.mmcv, 'imfrombytes', no_decoding)
        assert LoadImageFromFileOrSkip()(dict(img_path=str(huge))) is None
        reason = unreadable_reason(LoadImageFromFileOrSkip(), dict(img_path=str(huge)))
    # 16000x16000 is above twice Pillow's own limit: Pillow gives the pixel count, not the size
    assert reason == ('too large to decode: 256000000 pixels, more than max_pixels=89478485 of '
                      'the loading transform (raise it to load such images)')
    # the bound is configurable, None lifts it
    small = write_good_images(str(tmp_path / 'good'))[0]  # 48x40 pixels
    assert unreadable_reason(LoadImageFromFileOrSkip(max_pixels=1000), dict(
        img_path=small)).startswith('too large to decode: 48x40 = 1920 pixels, more than '
                                    'max_pixels=1000')
    assert LoadImageFromFileOrSkip(max_pixels=1920)(dict(img_path=small)) is not None
    assert LoadImageFromFileOrSkip(max_pixels=None)(dict(img_path=small)) is not None
    with pytest.raises(ValueError, match='max_pixels must be at least 1'):
        LoadImageFromFileOrSkip(max_pixels=0)


# ---- through the real entry points -------------------------------------------------------

def imagenet_folder(root, bad=True):
    """data_root/train/<wnid>/*.JPEG: 2 classes x 10 readable images (+ the bad files)."""
    for c, wnid in enumerate(('n01440764', 'n01443537')):
        folder = os.path.join(root, 'train', wnid)
        os.makedirs(folder)
        for i in range(10):
            with open(os.path.join(folder, f'{wnid}_{i}.JPEG'), 'wb') as f:
                f.write(jpeg_bytes(seed=100 * c + i))
    write_good_images(os.path.join(root, 'train', 'n01443537'))
    return write_bad_images(os.path.join(root, 'train', 'n01440764')) if bad else []


def config(tmp_path, data_root, max_share, min_loads):
    """The demo's model and schedule on an ImageNet-layout folder, 28-px crops."""
    path = tmp_path / 'imagenet_tiny.py'
    path.write_text(f"""_base_ = ['{DEMO}']
train_pipeline = [
    dict(type='LoadImageFromFileOrSkip', max_unreadable_share={max_share}, min_loads={min_loads}),
    dict(type='RandomResizedCrop', scale=28, backend='pillow', interpolation='bicubic'),
    dict(type='MultiView', num_views=[1, 1], transforms=[[], []]),
    dict(type='ConMIMMaskGenerator', patch_size=4, mask_ratio=0.4, min_num_patches=4,
         input_size=28),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(_delete_=True, type='ImageNet', data_root='{data_root}', split='train',
                 metainfo=dict(classes=['n01440764', 'n01443537']),  # 2 of the 1000
                 pipeline=train_pipeline))
model = dict(backbone=dict(arch=dict(num_layers=2)))
auto_scale_lr = dict(base_batch_size=8)  # the tiny run's recipe: its batch
train_cfg = dict(max_epochs=2)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
""")
    return str(path)


@pytest.mark.slow
def test_training_skips_and_names_each_bad_file(tmp_path):
    bad = imagenet_folder(str(tmp_path / 'imagenet'))
    work_dir = tmp_path / 'work'
    # tools/train.py in this process; its two dataloader workers are processes
    tool_main('tools/train.py', config(tmp_path, tmp_path / 'imagenet', 0.5, 20),
              '--work-dir', work_dir)
    assert os.path.exists(work_dir / 'epoch_2.pth')
    log = open(glob.glob(str(work_dir / '*' / '*.log'))[0]).read()
    for path in bad:  # each named in the run's log file, with its reason and the count
        reason = BAD[os.path.basename(path)][1]
        assert f'Skipped unreadable image {path}: {reason}' in log, path
    assert 'unreadable of' in log and 'images loaded by dataloader worker' in log


@pytest.mark.slow
def test_training_stops_when_unreadable_files_exceed_the_share(tmp_path):
    imagenet_folder(str(tmp_path / 'imagenet'))
    work_dir = tmp_path / 'work'
    stderr = tool_fails('tools/train.py', config(tmp_path, tmp_path / 'imagenet', 0.05, 20),
                        '--work-dir', work_dir)  # in this process
    assert 'TooManyUnreadableImagesError: Too many unreadable images' in stderr
    assert 'more than max_unreadable_share=0.05 allows' in stderr
    assert not os.path.exists(work_dir / 'epoch_1.pth')


@pytest.mark.parametrize('workers', [1, 2])
def test_verify_dataset_lists_every_unreadable_file(tmp_path, capsys, workers):
    bad = imagenet_folder(str(tmp_path / 'imagenet'))
    with pytest.raises(SystemExit) as status:  # tools/misc/verify_dataset.py in this process
        tool_main('tools/misc/verify_dataset.py', config(tmp_path, tmp_path / 'imagenet', 0.5, 20),
                  '--workers', workers)
    out, err = capsys.readouterr()
    assert status.value.code == 1, err[-3000:]
    listed = dict(line.split('\t') for line in out.splitlines())
    assert sorted(listed) == bad
    for path, reason in listed.items():
        assert reason.startswith(BAD[os.path.basename(path)][1])
    assert f'{len(bad)} of {20 + 6 + len(bad)} images unreadable.' in err


def test_verify_dataset_passes_a_clean_folder_and_takes_cfg_options(tmp_path, capsys):
    imagenet_folder(str(tmp_path / 'clean'), bad=False)
    imagenet_folder(str(tmp_path / 'dirty'))
    cfg = config(tmp_path, tmp_path / 'dirty', 0.5, 20)
    with pytest.raises(SystemExit) as status:  # tools/misc/verify_dataset.py in this process
        tool_main('tools/misc/verify_dataset.py', cfg, '--cfg-options',
                  f'train_dataloader.dataset.data_root={tmp_path}/clean')
    out, err = capsys.readouterr()
    assert status.value.code == 0, err[-3000:]
    assert out == '' and '0 of 26 images unreadable.' in err
