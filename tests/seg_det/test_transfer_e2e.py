"""The downstream configs end to end on real images, through tools/train.py, tools/test.py, the
real Runners and the libraries' metrics: labelme's VOC photos laid out as ADE20K (IoUMetric,
slide inference) and labelme's COCO json with polygons (CocoMetric bbox + segm); Fashion-MNIST
classification is the README demo chain (tests/tools/test_demo_chain.py). Each run starts from
the teacher of a tiny ConMIM pretraining checkpoint, extracted once per session by
tools/model_converters/extract_backbone.py (the ``tiny_teacher_checkpoint`` fixture). The tools
run in this process (their ``main`` with the command line; tests/tools/test_launchers.py and the
demo chain start them as processes): what a run prints is read from the log file it writes."""
import re

import numpy as np
import pytest
import torch

from tests.helpers.labelme import COCO_DIR, VOC_CLASSES, needs_labelme
from tests.helpers.paths import ROOT
from tests.helpers.runs import run_logs
from tests.helpers.tiny_models import TINY_TRANSFER as TINY
from tests.helpers.tools import tool_main

pytestmark = pytest.mark.slow  # real Runners of mmseg and mmdet
BN = "dict(type='BN', requires_grad=True)"


def train(config, work_dir, *options):
    """``python tools/train.py config --work-dir work_dir --cfg-options options``; its log."""
    tool_main('tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *options)
    return run_logs(work_dir)


def write_config(path, text):
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- segmentation
@needs_labelme
def test_upernet_on_labelme_photos_as_ade20k(tmp_path, ade_layout, tiny_teacher_checkpoint):
    teacher = tiny_teacher_checkpoint
    config = write_config(tmp_path / 'seg_tiny.py', f"""
_base_ = ['{ROOT}/configs/seg/conmim_vit-s_upernet_ade20k.py']
crop_size = (128, 128)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch=dict(_delete_=True, **{TINY!r}), img_size=crop_size, out_indices=(0, 1, 2, 3)),
    neck=dict(embed_dim=64, norm_cfg={BN}),
    decode_head=dict(in_channels=[64] * 4, channels=32, norm_cfg={BN}),
    auxiliary_head=dict(in_channels=64, channels=16, norm_cfg={BN}),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(85, 85)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(320, 160), ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 160), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
data_root = '{ade_layout}'
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
                   dict(type='PolyLR', power=1.0, eta_min=0., by_epoch=False, begin=2, end=6)]
train_cfg = dict(max_iters=6, val_interval=6)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=6))
# a recipe of 4 images per step at 2 per process: 2 micro-batches per optimiser step
auto_scale_lr = dict(base_batch_size=4)
""")
    work = tmp_path / 'work'
    out = train(config, work, f'model.backbone.init_cfg.checkpoint={teacher}')
    assert 'resized layers.0.attn.relative_position_bias_table' in out  # 14x14 -> 8x8 grid
    assert 'total batch: recipe 4, run 1 processes x 2 per process x 2 accumulation = 4' in out
    # 6 optimiser steps of 2 micro-batches; validation and checkpoint after the 6th step
    losses = [float(v) for v in re.findall(r'\bloss: ([\d.]+)', out)]
    assert len(losses) == 12 and all(np.isfinite(losses))
    tested = tool_main('tools/test.py', config, work / 'iter_12.pth', '--work-dir',
                       tmp_path / 'test')
    miou, aacc = tested['mIoU'], tested['aAcc']
    print(f'labelme-as-ADE20K after 6 iterations: mIoU {miou:.2f}, aAcc {aacc:.2f}')
    assert 0 <= miou <= 100 and 0 < aacc <= 100


# --------------------------------------------------------------------------- detection
def labelme_coco_config(base, model, train_pipeline, test_scale, schedule, batch_size=1):
    """A detection config of ``base`` on labelme's COCO json (3 photos with polygons, VOC
    classes), trained (``batch_size`` images per step) and evaluated (CocoMetric, bbox + segm) on
    it at ``test_scale``; ``model``, ``train_pipeline`` and ``schedule`` are config text."""
    data_root = COCO_DIR + '/'
    test_pipeline = f"""[
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale={test_scale!r}, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]"""
    return f"""
_base_ = ['{ROOT}/configs/det/{base}']
model = {model}
metainfo = dict(classes={VOC_CLASSES!r})
train_pipeline = {train_pipeline}
test_pipeline = {test_pipeline}
data = dict(data_root='{data_root}', ann_file='annotations.json', data_prefix=dict(img=''),
            metainfo=metainfo)
train_dataloader = dict(batch_size={batch_size}, num_workers=0, persistent_workers=False,
                        dataset=dict(dataset=dict(**data, pipeline=train_pipeline,
                                                  filter_cfg=dict(filter_empty_gt=True, min_size=0))))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(**data, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file='{data_root}annotations.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator
default_hooks = dict(logger=dict(interval=1))
auto_scale_lr = dict(base_batch_size={batch_size})  # the tiny run's recipe: its own batch
{schedule}
"""


def heads(channels, width, bbox_head=''):
    """The RPN and Mask R-CNN heads of the base config at ``channels`` wide, 20 classes."""
    return f"""
    rpn_head=dict(in_channels={channels}, feat_channels={channels}),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels={channels}),
        bbox_head=dict(in_channels={channels}, fc_out_channels={width}, num_classes=20{bbox_head}),
        mask_roi_extractor=dict(out_channels={channels}),
        mask_head=dict(in_channels={channels}, conv_out_channels={channels}, num_classes=20))"""


def train_and_test_on_labelme_coco(tmp_path, config, checkpoint, teacher):
    """tools/train.py from the extracted ``teacher``, then tools/test.py on the last checkpoint;
    returns the training log, bbox and segm mAP and the checkpoint's state dict."""
    work = tmp_path / 'work'
    out = train(config, work, f'model.backbone.init_cfg.checkpoint={teacher}')
    assert 'Loaded' in out
    tested = tool_main('tools/test.py', config, work / checkpoint, '--work-dir', tmp_path / 'test')
    bbox, segm = tested['coco/bbox_mAP'], tested['coco/segm_mAP']
    assert 0 <= bbox <= 1 and 0 <= segm <= 1
    ckpt = torch.load(str(work / checkpoint), map_location='cpu', weights_only=True)
    return out, bbox, segm, ckpt['state_dict']


@needs_labelme
def test_mask_rcnn_on_labelme_coco_json(tmp_path, tiny_teacher_checkpoint):
    config = write_config(tmp_path / 'det_tiny.py', labelme_coco_config(
        'conmim_vit-s_mask-rcnn-1x_coco.py',
        model=f"""dict(
    backbone=dict(arch=dict(_delete_=True, **{TINY!r}), img_size=(320, 480), out_indices=(0, 1, 2, 3),
                  use_checkpoint=False),
    neck=[dict(type='ViTFeaturePyramid', in_channels=64, norm_cfg={BN}),
          dict(type='FPN', in_channels=[64] * 4, out_channels=32, num_outs=5)],{heads(32, 64)},
    test_cfg=dict(rcnn=dict(score_thr=0.)))""",
        train_pipeline="""[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='RandomResize', scale=[(480, 256), (480, 320)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]""",
        test_scale=(480, 320),
        schedule="""
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
                   dict(type='MultiStepLR', begin=0, end=2, by_epoch=True, milestones=[1])]
train_cfg = dict(max_epochs=2, val_interval=2)"""))
    out, bbox, segm, state = train_and_test_on_labelme_coco(tmp_path, config, 'epoch_2.pth',
                                                         tiny_teacher_checkpoint)
    losses = [float(v) for v in re.findall(r'\bloss: ([\d.]+)', out)]
    assert len(losses) == 6 and all(np.isfinite(losses))
    print(f'labelme COCO after 6 iterations: bbox mAP {bbox:.3f}, segm mAP {segm:.3f}')
    assert any(k.startswith('neck.0.branches.0.') for k in state)


@needs_labelme
def test_vitdet_mask_rcnn_on_labelme_coco_json(tmp_path, tiny_teacher_checkpoint):
    """The ViTDet recipe at 224x224 instead of 1024x1024: windows of 6 tokens in a 14x14 grid
    (padded to 18x18), global attention in blocks 1 and 3, LSJ crops, SimpleFPN and the LN heads,
    fewer proposals and sampled RoIs; the pretrained 14x14 table is resized to the windows on
    loading."""
    config = write_config(tmp_path / 'vitdet_tiny.py', labelme_coco_config(
        'conmim_vit-b_vitdet_mask-rcnn_lsj-25e_coco.py',
        model=f"""dict(
    data_preprocessor=dict(batch_augments=[dict(type='BatchFixedSizePad', size=(224, 224),
                                                pad_mask=True)]),
    backbone=dict(arch=dict(_delete_=True, **{TINY!r}), img_size=224, window_size=6,
                  global_attn_indices=(1, 3), out_indices=(3, ), use_checkpoint=False),
    neck=dict(in_channels=64, out_channels=32),{heads(32, 64, ', conv_out_channels=32')},
    train_cfg=dict(rpn_proposal=dict(nms_pre=300, max_per_img=100),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100),
                  rcnn=dict(score_thr=0., max_per_img=20)))""",
        train_pipeline="""[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='RandomResize', scale=(224, 224), ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=(224, 224),
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]""",
        test_scale=(224, 224),
        batch_size=2, schedule="""
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
                   dict(type='MultiStepLR', begin=0, end=3, by_epoch=False, milestones=[2])]
train_cfg = dict(max_iters=3, val_interval=3)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3))"""))
    out, bbox, segm, state = train_and_test_on_labelme_coco(tmp_path, config, 'iter_3.pth',
                                                         tiny_teacher_checkpoint)
    assert 'resized layers.0.attn.relative_position_bias_table' in out  # 14x14 -> 6x6 window
    assert 'resized layers.1.' not in out  # global block: the 14x14 grid of 224x224
    losses = [float(v) for v in re.findall(r'\bloss: ([\d.]+)', out)]
    assert len(losses) == 3 and all(np.isfinite(losses))
    print(f'labelme COCO, ViTDet, after 3 iterations: bbox mAP {bbox:.3f}, segm mAP {segm:.3f}')
    assert state['backbone.layers.0.attn.relative_position_bias_table'].shape[0] == 11 * 11 + 3
    assert {'neck.lateral_convs.0.ln.weight', 'roi_head.bbox_head.shared_convs.3.ln.weight',
            'roi_head.mask_head.convs.3.ln.weight'} <= set(state)  # LayerNorm in neck and heads
