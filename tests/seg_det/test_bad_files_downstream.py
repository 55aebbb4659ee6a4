"""One bad file never ends a segmentation or detection run (issue 17 §3, §4).

The seg/det training configs load with the transforms that skip an unreadable image or label map,
registered in mmseg's and mmdet's scopes. Runs through the real Runner on labelme's photos (as in
tests/seg_det/test_transfer_e2e.py, in-process and a few iterations) skip a truncated JPEG whose name is
no UTF-8, a truncated label PNG and a PNG of 16000x16000 pixels, each named in the run's log
file; tools/misc/verify_dataset.py lists the same files.
"""
import glob
import importlib
import io
import os
import shutil
import sys

import pytest
from mmengine.config import Config

from tests.helpers.images import huge_png
from tests.helpers.labelme import COCO_DIR, VOC_CLASSES, needs_labelme
from tests.helpers.paths import ROOT
from tests.helpers.tiny_models import TINY_TRANSFER as TINY
from tests.helpers.tools import load_tool

CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'seg', '*.py')) +
                 glob.glob(os.path.join(ROOT, 'configs', 'det', '*.py')))
BN = dict(type='BN', requires_grad=True)
CUT_NAME = os.fsdecode(b'cut_\xe9')  # Latin-1 bytes, no valid UTF-8: 'cut_\udce9' in Python


def train_in_process(cfg):
    """The Runner of the config (its DeviceAmpOptimWrapper trains in fp32 on a machine without
    GPU); the iterations run."""
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def train_pipeline(cfg):
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset:  # RepeatDataset and the like
        dataset = dataset.dataset
    return dataset.pipeline


def scope_of(path):
    return 'mmseg' if os.sep + 'seg' + os.sep in path else 'mmdet'


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_every_seg_and_det_training_config_loads_with_the_skipping_transforms(path):
    from mmengine.registry import DefaultScope
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(path)
    import_modules_from_strings(**cfg.custom_imports)
    registry = importlib.import_module(f'{scope_of(path)}.registry').TRANSFORMS
    pipeline = train_pipeline(cfg)
    types = [step['type'] for step in pipeline]
    assert types[:2] == ['LoadImageFromFileOrSkip', 'LoadAnnotationsOrSkip'], types
    assert 'LoadImageFromFile' not in types and 'LoadAnnotations' not in types
    with DefaultScope.overwrite_default_scope(scope_of(path)):
        image_loader, annotation_loader = (registry.build(step) for step in pipeline[:2])
    assert type(image_loader).__name__ == 'LoadImageFromFileOrSkip'
    assert type(annotation_loader).__module__ == f'conmim_mm.{scope_of(path)[2:]}.loading'


# --------------------------------------------------------------------------- segmentation
@pytest.fixture
def ade_with_bad_files(ade_layout):
    """labelme's 3 photos as ADE20K, plus in training: a truncated JPEG named in Latin-1, a
    truncated label PNG, and a 16000x16000 PNG (each with a readable counterpart)."""
    images, labels = ade_layout / 'images' / 'training', ade_layout / 'annotations' / 'training'
    photo, label = sorted(images.iterdir())[0], sorted(labels.iterdir())[0]
    cut = os.path.join(images, CUT_NAME + '.jpg')
    with open(cut, 'wb') as f:
        f.write(photo.read_bytes()[:3000])
    shutil.copy(label, os.path.join(labels, CUT_NAME + '.png'))
    shutil.copy(photo, images / 'cut_label.jpg')
    (labels / 'cut_label.png').write_bytes(label.read_bytes()[:200])
    (images / 'huge.jpg').write_bytes(huge_png())
    shutil.copy(label, labels / 'huge.png')
    return dict(image=cut, label=str(labels / 'cut_label.png'),
                huge=str(images / 'huge.jpg'))


def seg_config(data_root, work_dir):
    """The real ViT-S UperNet config at tiny sizes: its training pipeline kept, scales shrunk."""
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/seg/conmim_vit-s_upernet_ade20k.py'))
    crop = (128, 128)
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'RandomResize':
            step['scale'] = (320, 160)
        if step['type'] == 'RandomCrop':
            step['crop_size'] = crop
    cfg.merge_from_dict(dict(
        work_dir=str(work_dir),
        model=dict(
            data_preprocessor=dict(size=crop),
            backbone=dict(arch=dict(_delete_=True, **TINY), img_size=crop,
                          out_indices=(0, 1, 2, 3), init_cfg=None),
            neck=dict(embed_dim=64, norm_cfg=BN),
            decode_head=dict(in_channels=[64] * 4, channels=16, norm_cfg=BN),
            auxiliary_head=dict(in_channels=64, channels=16, norm_cfg=BN)),
        train_dataloader=dict(batch_size=2, num_workers=0, persistent_workers=False,
                              dataset=dict(data_root=str(data_root))),
        train_cfg=dict(max_iters=3, val_interval=100),
        auto_scale_lr=dict(base_batch_size=2),  # the tiny run's recipe: its batch
        default_hooks=dict(logger=dict(interval=1), checkpoint=dict(interval=100,
                                                                    save_last=False))))
    for key in ('val', 'test'):
        cfg[f'{key}_dataloader'] = cfg[f'{key}_cfg'] = cfg[f'{key}_evaluator'] = None
    return cfg


def run_log(work_dir):
    return open(glob.glob(os.path.join(str(work_dir), '*', '*.log'))[0],
                encoding='utf-8').read()


@pytest.mark.slow
@needs_labelme
def test_segmentation_run_skips_a_cut_image_a_cut_label_and_a_huge_image(
        tmp_path, ade_with_bad_files, capfd):
    bad = ade_with_bad_files
    work_dir = tmp_path / 'work'
    runner = train_in_process(seg_config(tmp_path / 'ade', work_dir))  # 3 iterations of 2 samples: one pass over the 6 training samples
    assert runner.iter == 3
    log = run_log(work_dir)
    cut = bad['image'].replace('cut_\udce9', 'cut_\\xe9')  # the Latin-1 byte, escaped
    assert f'Skipped unreadable image {cut}: truncated JPEG' in log
    assert f'Skipped unreadable annotation file {bad["label"]}: truncated PNG' in log
    assert (f'Skipped unreadable image {bad["huge"]}: too large to decode: 256000000 pixels, '
            'more than max_pixels=89478485') in log
    assert 'Logging error' not in capfd.readouterr().err


# --------------------------------------------------------------------------- detection
@pytest.fixture
def coco_with_a_cut_image(tmp_path):
    """labelme's COCO json and photos, one photo the json names cut short."""
    root = tmp_path / 'coco'
    shutil.copytree(COCO_DIR, root, ignore=shutil.ignore_patterns('Visualization'))
    photo = sorted((root / 'JPEGImages').iterdir())[0]
    photo.write_bytes(photo.read_bytes()[:3000])
    return root, str(photo)


@pytest.mark.slow
@needs_labelme
def test_detection_run_skips_a_cut_image_the_coco_json_names(tmp_path, coco_with_a_cut_image):
    root, cut = coco_with_a_cut_image
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/det/conmim_vit-s_mask-rcnn-1x_coco.py'))
    for step in train_pipeline(cfg):
        if step['type'] == 'RandomResize':
            step['scale'] = [(320, 192), (320, 256)]
    cfg.merge_from_dict(dict(
        work_dir=str(tmp_path / 'work'),
        model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY), img_size=(256, 320),
                          out_indices=(0, 1, 2, 3), use_checkpoint=False, init_cfg=None),
            neck=[dict(type='ViTFeaturePyramid', in_channels=64, norm_cfg=BN),
                  dict(type='FPN', in_channels=[64] * 4, out_channels=16, num_outs=5)],
            rpn_head=dict(in_channels=16, feat_channels=16),
            roi_head=dict(
                bbox_roi_extractor=dict(out_channels=16),
                bbox_head=dict(in_channels=16, fc_out_channels=32, num_classes=20),
                mask_roi_extractor=dict(out_channels=16),
                mask_head=dict(in_channels=16, conv_out_channels=16, num_classes=20))),
        train_dataloader=dict(batch_size=1, num_workers=0, persistent_workers=False, dataset=dict(
            dataset=dict(data_root=str(root) + '/', ann_file='annotations.json',
                         data_prefix=dict(img=''), metainfo=dict(classes=VOC_CLASSES),
                         filter_cfg=dict(filter_empty_gt=True, min_size=0)))),
        train_cfg=dict(max_epochs=1, val_interval=100),
        auto_scale_lr=dict(base_batch_size=1),  # the tiny run's recipe: its batch
        param_scheduler=[dict(type='ConstantLR', factor=1.0, by_epoch=True)],
        default_hooks=dict(logger=dict(interval=1),
                           checkpoint=dict(interval=100, save_last=False))))
    for key in ('val', 'test'):
        cfg[f'{key}_dataloader'] = cfg[f'{key}_cfg'] = cfg[f'{key}_evaluator'] = None
    runner = train_in_process(cfg)  # one epoch: every image the json names is loaded
    assert runner.iter == len(runner.train_dataloader) >= 2
    assert f'Skipped unreadable image {cut}: truncated JPEG' in run_log(tmp_path / 'work')


# --------------------------------------------------------------------------- verify_dataset.py
def verify(monkeypatch, *argv):
    """tools/misc/verify_dataset.py in this process, its stdout a strict UTF-8 stream (as a
    terminal's): (exit status, stdout bytes)."""
    tool = load_tool('tools/misc/verify_dataset.py')
    stdout = io.TextIOWrapper(io.BytesIO(), encoding='utf-8', write_through=True)
    monkeypatch.setattr(sys, 'stdout', stdout)
    monkeypatch.setattr(sys, 'argv', ['verify_dataset.py', *map(str, argv)])
    with pytest.raises(SystemExit) as status:
        tool.main()
    return status.value.code, stdout.buffer.getvalue()


@needs_labelme
def test_verify_dataset_lists_cut_images_and_label_maps_with_any_file_name(
        tmp_path, monkeypatch, capsys, ade_with_bad_files):
    config = os.path.join(ROOT, 'configs/seg/conmim_vit-s_upernet_ade20k.py')
    code, out = verify(monkeypatch, config, '--workers', 1, '--cfg-options',
                       f'train_dataloader.dataset.data_root={tmp_path / "ade"}')
    assert code == 1
    listed = dict(line.split(b'\t') for line in out.splitlines())
    bad = ade_with_bad_files
    assert sorted(listed) == sorted(os.fsencode(bad[k]) for k in ('image', 'label', 'huge'))
    assert listed[os.fsencode(bad['image'])].startswith(b'truncated JPEG')
    assert listed[os.fsencode(bad['label'])].startswith(b'truncated PNG')
    assert listed[os.fsencode(bad['huge'])].startswith(b'too large to decode: 256000000 pixels')
    err = capsys.readouterr().err
    assert '2 of 6 images unreadable.' in err and '1 of 6 label maps unreadable.' in err


@needs_labelme
def test_verify_dataset_checks_the_images_a_coco_json_names(tmp_path, monkeypatch, capsys,
                                                            coco_with_a_cut_image):
    root, cut = coco_with_a_cut_image
    config = tmp_path / 'det_labelme.py'
    config.write_text(f"""_base_ = ['{ROOT}/configs/det/conmim_vit-s_mask-rcnn_coco.py']
train_dataloader = dict(dataset=dict(dataset=dict(
    data_root='{root}/', ann_file='annotations.json', data_prefix=dict(img=''),
    metainfo=dict(classes={VOC_CLASSES!r}))))
""")
    code, out = verify(monkeypatch, config, '--workers', 1)
    assert code == 1
    listed = [line for line in out.decode().splitlines() if '\t' in line]  # pycocotools prints
    assert listed == [f'{cut}\ttruncated JPEG (3000 bytes, no end-of-image marker)']
    assert f'1 of {len(os.listdir(root / "JPEGImages"))} images unreadable.' in (
        capsys.readouterr().err)
