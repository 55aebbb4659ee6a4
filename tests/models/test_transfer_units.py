"""Transfer pieces on their own: checkpoint tools, strict pretrained loading, layer-wise lr decay,
and the conversion of timm/official BEiT-layout weights (identical logits)."""
import copy
import os
import subprocess
import sys

import pytest
import torch
from mmpretrain.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from conmim_mm.models.utils.pretrained import PretrainedMismatchError
from conmim_mm.models.utils.relative_position import resize_bias_table
from tests.helpers.paths import ROOT
from tests.helpers.tiny_models import TINY_TRANSFER as TINY
from tests.helpers.tools import load_tool

EXTRACT = 'tools/model_converters/extract_backbone.py'
CONVERT = 'tools/model_converters/beit_to_conmim.py'


def downstream_backbone(checkpoint, prefix='backbone.', arch=TINY, **kwargs):
    cfg = dict(type='ConMIMViT', arch=arch, img_size=224, patch_size=16, out_type='featmap',
               out_indices=(0, 1, 2, 3), final_norm=False, use_abs_pos_emb=False,
               use_rel_pos_bias=True, use_shared_rel_pos_bias=False, with_mask_token=False,
               init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint), prefix=prefix))
    cfg.update(kwargs)
    return MODELS.build(cfg)


# --------------------------------------------------------------------------- extraction tool
def test_extract_takes_the_teacher_by_default_and_the_student_on_request(
        tiny_pretraining_checkpoint, tiny_teacher_checkpoint, tmp_path):
    src, model = tiny_pretraining_checkpoint
    teacher = torch.load(str(tiny_teacher_checkpoint), weights_only=True)
    assert teacher['meta']['branch'] == 'teacher'
    expected = model.teacher.module.backbone.state_dict()
    assert set(teacher['state_dict']) == {'backbone.' + k for k in expected}
    for key, value in expected.items():
        assert torch.equal(teacher['state_dict']['backbone.' + key], value), key

    student_file = tmp_path / 'student.pth'
    load_tool(EXTRACT).main([str(src), str(student_file), '--student'])
    student = torch.load(str(student_file), weights_only=True)['state_dict']
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(student['backbone.' + key], value), key
    assert not torch.equal(student['backbone.layers.0.attn.qkv.weight'],
                           teacher['state_dict']['backbone.layers.0.attn.qkv.weight'])


def test_extract_refuses_a_file_without_teacher(tiny_teacher_checkpoint, tmp_path):
    with pytest.raises(SystemExit, match='--student'):
        load_tool(EXTRACT).main([str(tiny_teacher_checkpoint), str(tmp_path / 'x.pth')])


# --------------------------------------------------------------------------- strict loading
def test_loading_expands_the_shared_table_and_keeps_features(tiny_pretraining_checkpoint,
                                                             tiny_teacher_checkpoint):
    _, model = tiny_pretraining_checkpoint
    backbone = downstream_backbone(tiny_teacher_checkpoint)
    backbone.init_weights()
    teacher = model.teacher.module.backbone
    shared = teacher.rel_pos_bias.relative_position_bias_table
    for layer in backbone.layers:
        assert torch.equal(layer.attn.relative_position_bias_table, shared)
    # Same features as the pretraining teacher, whose blocks read the one shared table.
    reference = copy.deepcopy(teacher)
    reference.out_type, reference.out_indices, reference.final_norm = 'featmap', [0, 1, 2, 3], False
    x = torch.randn(2, 3, 224, 224)
    backbone.eval(), reference.eval()
    with torch.no_grad():
        for a, b in zip(backbone(x), reference(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_loading_resizes_tables_for_another_image_size(tiny_teacher_checkpoint):
    backbone = downstream_backbone(tiny_teacher_checkpoint, img_size=320)
    backbone.init_weights()
    shared = torch.load(str(tiny_teacher_checkpoint), weights_only=True)['state_dict'][
        'backbone.rel_pos_bias.relative_position_bias_table']
    expected = resize_bias_table(shared, (14, 14), (20, 20))
    assert backbone.layers[2].attn.relative_position_bias_table.shape == (39 * 39 + 3, 2)
    torch.testing.assert_close(backbone.layers[2].attn.relative_position_bias_table, expected)


def test_raw_pretraining_checkpoint_loads_with_the_teacher_prefix(tiny_pretraining_checkpoint):
    src, model = tiny_pretraining_checkpoint
    backbone = downstream_backbone(src, prefix='teacher.module.backbone.')
    backbone.init_weights()
    assert torch.equal(backbone.patch_embed.projection.weight,
                       model.teacher.module.backbone.patch_embed.projection.weight)


def test_wrong_key_layout_fails_loudly_with_the_missing_keys(tiny_teacher_checkpoint, tmp_path):
    state = torch.load(str(tiny_teacher_checkpoint), weights_only=True)['state_dict']
    renamed = {k.replace('backbone.layers.', 'backbone.blocks.'): v for k, v in state.items()}
    bad = tmp_path / 'renamed.pth'
    torch.save({'state_dict': renamed}, str(bad))
    with pytest.raises(PretrainedMismatchError, match=r'missing keys .*layers\.0\.attn\.qkv\.weight'):
        downstream_backbone(bad).init_weights()


def test_wrong_prefix_names_the_prefixes_found(tiny_pretraining_checkpoint):
    src, _ = tiny_pretraining_checkpoint
    with pytest.raises(PretrainedMismatchError, match=r"teacher\.module\.backbone\."):
        downstream_backbone(src, prefix='student.').init_weights()


def test_other_arch_fails_with_the_shapes(tiny_teacher_checkpoint):
    other = dict(TINY, embed_dims=96, feedforward_channels=192)
    with pytest.raises(PretrainedMismatchError, match='arch'):
        downstream_backbone(tiny_teacher_checkpoint, arch=other).init_weights()


def test_missing_checkpoint_path_says_how_to_pass_it():
    with pytest.raises(PretrainedMismatchError, match='init_cfg.checkpoint=PATH'):
        downstream_backbone('').init_weights()


# --------------------------------------------------------------------------- layer decay
def tiny_classifier(**backbone):
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ConMIMViT', arch=TINY, img_size=32, patch_size=16,
                      out_type='avg_featmap', use_rel_pos_bias=True, with_mask_token=False,
                      **backbone),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64)))


def build_optimizer(model, **paramwise):
    paramwise = dict(dict(layer_decay_rate=0.5, flat_decay_mult=0.), **paramwise)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='BackboneLayerDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper',
                               optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
        paramwise_cfg=paramwise))
    return constructor(model).optimizer


def test_layer_decay_scales_by_backbone_depth():
    model = tiny_classifier()
    groups = {g['param_name']: g for g in build_optimizer(model).param_groups}
    assert len(groups) == len(list(model.parameters()))
    # 4 blocks -> depths 0 (stem) .. 5 (after the backbone); scale = 0.5 ** (5 - depth)
    assert groups['backbone.patch_embed.projection.weight']['lr'] == pytest.approx(0.5 ** 5)
    assert groups['backbone.cls_token']['lr'] == pytest.approx(0.5 ** 5)
    for i in range(4):
        assert groups[f'backbone.layers.{i}.attn.qkv.weight']['lr'] == pytest.approx(0.5 ** (4 - i))
    assert groups['backbone.ln2.weight']['lr'] == pytest.approx(1.0)
    assert groups['head.fc.weight']['lr'] == pytest.approx(1.0)
    assert groups['backbone.layers.0.attn.q_bias']['weight_decay'] == 0
    assert groups['head.fc.weight']['weight_decay'] == pytest.approx(0.05)


def test_layer_decay_skips_frozen_parameters():
    model = tiny_classifier()
    model.backbone.layers[:2].requires_grad_(False)
    names = {g['param_name'] for g in build_optimizer(model).param_groups}
    assert 'backbone.layers.1.attn.qkv.weight' not in names
    assert 'backbone.layers.2.attn.qkv.weight' in names


def test_layer_decay_errors_are_clear():
    with pytest.raises(TypeError, match='get_layer_depth'):
        build_optimizer(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    with pytest.raises(ValueError, match='layer_decay_rate'):
        build_optimizer(tiny_classifier(), decay_rate=0.9, num_layers=12)


@pytest.mark.slow  # a fresh interpreter
def test_plain_import_does_not_load_the_seg_and_det_glue():
    # (mmpretrain itself imports mmdet when it is installed; mmseg must stay out)
    code = ('import sys, conmim_mm; bad = [m for m in ("mmseg", "conmim_mm.seg", "conmim_mm.det") '
            'if m in sys.modules]; assert not bad, bad')
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]


# --------------------------------------------------------------------------- BEiT-layout conversion
@pytest.mark.parametrize('pool', ['avg', 'token'])
def test_timm_beit_converts_to_identical_logits(tmp_path, pool):
    timm_beit = pytest.importorskip('timm.models.beit')
    torch.manual_seed(0)
    beit = timm_beit.Beit(img_size=224, patch_size=16, num_classes=7, global_pool=pool,
                          embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0, qkv_bias=True,
                          use_abs_pos_emb=False, use_rel_pos_bias=True, init_values=0.1)
    with torch.no_grad():  # timm starts tables and biases at zero: make every tensor count
        for p in beit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    src, dst = tmp_path / 'timm.pth', tmp_path / 'converted.pth'
    torch.save(beit.state_dict(), str(src))
    load_tool(CONVERT).main([str(src), str(dst)])

    arch = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ConMIMViT', arch=arch, img_size=224, patch_size=16,
                      out_type='avg_featmap' if pool == 'avg' else 'cls_token',
                      final_norm=pool == 'token', use_abs_pos_emb=False, use_rel_pos_bias=True,
                      use_shared_rel_pos_bias=False, with_mask_token=False,
                      init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.')),
        head=dict(type='LinearClsHead', num_classes=7, in_channels=64,
                  init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='head.'))))
    model.init_weights()
    model.eval(), beit.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'), beit(x), rtol=0, atol=1e-5)


def test_official_checkpoint_file_with_its_args_namespace_converts(tmp_path):
    """The official ConMIM/BEiT code saves {'model', 'optimizer', 'epoch', 'args'}; 'args' is an
    argparse.Namespace, which weights-only loading must accept (and nothing else new)."""
    import argparse
    timm_beit = pytest.importorskip('timm.models.beit')
    beit = timm_beit.Beit(img_size=32, patch_size=16, num_classes=0, embed_dim=32, depth=1,
                          num_heads=2, mlp_ratio=2.0, qkv_bias=True, use_abs_pos_emb=False,
                          use_shared_rel_pos_bias=True, init_values=0.1)
    src, dst = tmp_path / 'checkpoint-799.pth', tmp_path / 'converted.pth'
    torch.save({'model': beit.state_dict(), 'epoch': 799,
                'args': argparse.Namespace(model='beit_base_patch16_224', lr=5e-4)}, str(src))
    load_tool(CONVERT).main([str(src), str(dst)])
    converted = torch.load(str(dst), weights_only=True)['state_dict']
    assert 'backbone.layers.0.attn.qkv.weight' in converted


def test_conversion_rejects_foreign_keys(tmp_path):
    src = tmp_path / 'vit.pth'
    torch.save({'model': {'blocks.0.attn.qkv.weight': torch.zeros(6, 2),
                          'blocks.0.attn.qkv.bias': torch.zeros(6)}}, str(src))
    with pytest.raises(SystemExit, match='qkv bias'):
        load_tool(CONVERT).main([str(src), str(tmp_path / 'out.pth')])
