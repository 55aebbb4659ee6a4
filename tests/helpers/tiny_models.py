"""Tiny architectures and model / checkpoint builders shared by the test modules."""
import os

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from .paths import ROOT

# 2 blocks, 32 wide, 4 heads: unit tests of the backbone and the algorithm.
TINY_VIT = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
# 4 blocks, 64 wide, 16-px patches: the shapes of the real transfer recipes at a fraction of the
# cost (checkpoint loading, segmentation, detection).
TINY_TRANSFER = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)


def build_conmim(img_size=32, patch_size=8, arch=TINY_VIT, **kwargs):
    """A ConMIM model on ``TINY_VIT`` with identity normalisation, weights initialised."""
    cfg = dict(
        type='ConMIM',
        backbone=dict(type='ConMIMViT', arch=arch, img_size=img_size, patch_size=patch_size,
                      out_type='raw', final_norm=True, use_rel_pos_bias=False,
                      use_shared_rel_pos_bias=True),
        neck=dict(type='NonLinearNeck', in_channels=arch['embed_dims'], hid_channels=64,
                  out_channels=16, num_layers=3, with_bias=False, with_last_bn=True,
                  with_last_bn_affine=False, with_avg_pool=False, norm_cfg=dict(type='BN1d')),
        head=dict(type='ConMIMHead', temperature=0.1),
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0.] * 3, std=[1.] * 3),
        **kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def build_pretrainer(config='configs/pretrain/conmim_vit-b.py', arch=None, **backbone):
    """The model of a pretraining config (optionally with another ``arch``), its teacher moved
    away from the student as after training."""
    cfg = Config.fromfile(os.path.join(ROOT, config))
    if arch is not None:
        cfg.model.backbone.arch = arch
        cfg.model.neck.update(in_channels=arch['embed_dims'], hid_channels=128, out_channels=32)
    cfg.model.backbone.update(backbone)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        model.init_weights()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.teacher.module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return model


def save_pretraining_checkpoint(path, **kwargs):
    """Write a pretraining checkpoint (student, teacher, projectors) as training saves it."""
    model = build_pretrainer(**kwargs)
    torch.save({'state_dict': model.state_dict(), 'meta': dict(epoch=1)}, str(path))
    return model
