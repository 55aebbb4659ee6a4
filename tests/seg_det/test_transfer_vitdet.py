"""ViTDet parts on their own: windowed attention (equal to global attention when one window
covers the grid, local otherwise, any grid padded to whole windows), ViTDet's global blocks, the
simple feature pyramid's strides and channels, a tiny pretraining checkpoint loading strictly
through init_cfg, and the recipe values of the configs. The ViT-B checks (checkpoint, 1024x1024
on the CPU) are in test_transfer_models.py; the run through tools/train.py and tools/test.py in
test_transfer_e2e.py."""
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from conmim_mm.models.utils.relative_position import resize_bias_table
from tests.helpers.paths import ROOT
from tests.helpers.tiny_models import TINY_TRANSFER as TINY
from tests.helpers.tiny_models import save_pretraining_checkpoint

ONE_BLOCK = dict(TINY, num_layers=1)


def build(cfg):
    import conmim_mm.det  # noqa: F401
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):  # other tests may have set mmpretrain
        model = MODELS.build(cfg)
    model.init_weights()
    model.eval()  # (mmpretrain's ViT.train does not return the module)
    return model


def vitdet(**kwargs):
    cfg = dict(type='ConMIMViTDet', arch=TINY, img_size=112, window_size=7,
               global_attn_indices=(3, ), out_type='featmap', out_indices=(3, ), final_norm=False,
               with_mask_token=False, layer_scale_init_value=0.1)
    cfg.update(kwargs)
    return build(cfg)


def test_windowed_attention_equals_global_attention_when_the_window_covers_the_grid():
    torch.manual_seed(0)
    windowed = vitdet(layer_scale_init_value=1.)
    with torch.no_grad():  # weights far from the near-uniform attention of the init
        for p in windowed.parameters():
            p.normal_(0, 0.2)
    plain = build(dict(type='ConMIMViT', arch=TINY, img_size=112, out_type='featmap',
                       out_indices=(3, ), final_norm=False, with_mask_token=False,
                       use_rel_pos_bias=True, use_shared_rel_pos_bias=False,
                       layer_scale_init_value=1.))
    plain.load_state_dict(windowed.state_dict())  # same names and shapes: a 7x7 table per block
    image = torch.randn(2, 3, 112, 112)  # 7x7 tokens = one window
    with torch.no_grad():
        torch.testing.assert_close(windowed(image)[0], plain(image)[0], rtol=0, atol=1e-5)
        bigger = torch.randn(1, 3, 224, 224)  # 14x14 tokens = 4 windows: no longer the same
        assert (windowed(bigger)[0] - plain(bigger)[0]).abs().max() > 0.1


@pytest.mark.parametrize('size', [(128, 128), (80, 144)])
def test_windowed_block_is_local_and_pads_the_grid_to_whole_windows(size):
    """One windowed block: changing the pixels of the top-left window leaves every token of the
    other windows as it was; 5x9 tokens are padded to 8x12 (2x3 windows of 4x4)."""
    torch.manual_seed(0)
    model = vitdet(arch=ONE_BLOCK, img_size=64, window_size=4, global_attn_indices=(),
                   out_indices=(0, ))
    image = torch.randn(1, 3, *size)
    changed = image.clone()
    changed[..., :64, :64] += 1  # the 4x4 tokens of window (0, 0)
    with torch.no_grad():
        a, b = model(image)[0], model(changed)[0]
    assert a.shape == (1, 64, size[0] // 16, size[1] // 16)
    inside = torch.zeros(a.shape[-2:], dtype=torch.bool)
    inside[:4, :4] = True
    assert not torch.allclose(a[..., inside], b[..., inside])
    torch.testing.assert_close(a[..., ~inside], b[..., ~inside], rtol=0, atol=0)


def test_global_blocks_follow_vitdet_and_tables_are_sized_per_block():
    from conmim_mm.det.windowed_vit import evenly_spaced_global_blocks
    assert evenly_spaced_global_blocks(12) == (2, 5, 8, 11)
    assert evenly_spaced_global_blocks(24) == (5, 11, 17, 23)
    model = vitdet(global_attn_indices=None)  # 4 blocks: each is the last of its quarter
    assert model.global_attn_indices == (0, 1, 2, 3)
    model = vitdet(img_size=224, global_attn_indices=(-1, ))
    assert model.global_attn_indices == (3, )
    assert [tuple(layer.attn.window_size) for layer in model.layers] == [(7, 7)] * 3 + [(14, 14)]
    for kwargs, match in ((dict(global_attn_indices=(4, )), 'not blocks'),
                          (dict(use_shared_rel_pos_bias=True, use_rel_pos_bias=False),
                           'one relative position table per block'),
                          (dict(window_size=0), 'positive int'),
                          (dict(layer_cfgs=[{}] * 4), 'global_attn_indices'),
                          (dict(arch=dict(TINY, num_layers=6), global_attn_indices=None),
                           'evenly')):
        with pytest.raises(ValueError, match=match):
            vitdet(**kwargs)


def test_simple_fpn_makes_strides_4_to_64_with_layernorm():
    neck = build(dict(type='SimpleFPN', in_channels=64, out_channels=32, num_outs=5))
    norms = [m for m in neck.modules() if type(m).__name__ == 'LayerNorm2d']
    assert len(norms) == 1 + 2 * 4  # x4 branch + after each 1x1 and 3x3 convolution
    outs = neck([torch.randn(2, 64, 8, 12)])  # a stride-16 map of a 128x192 image
    assert [tuple(o.shape) for o in outs] == [(2, 32, 32, 48), (2, 32, 16, 24), (2, 32, 8, 12),
                                              (2, 32, 4, 6), (2, 32, 2, 3)]
    with pytest.raises(ValueError, match='out_indices'):
        neck([torch.randn(2, 64, 8, 12)] * 4)
    with pytest.raises(ValueError, match='in_channels'):
        neck([torch.randn(2, 32, 8, 12)])
    with pytest.raises(ValueError, match='scale_factors'):
        build(dict(type='SimpleFPN', in_channels=64, scale_factors=(8, 1)))


def test_pretraining_checkpoint_loads_whole_through_init_cfg(tmp_path):
    """Strict loading: every block from the checkpoint, windowed blocks' tables the pretrained
    14x14 table as is, global blocks' tables resized to the full grid."""
    path = tmp_path / 'pretrain.pth'
    save_pretraining_checkpoint(path, arch=TINY)
    teacher = {k[len('teacher.module.backbone.'):]: v for k, v in
               torch.load(str(path), weights_only=True)['state_dict'].items()
               if k.startswith('teacher.module.backbone.')}
    model = vitdet(img_size=448, window_size=14, global_attn_indices=(1, 3),
                   init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                 prefix='teacher.module.backbone.'))
    shared = teacher['rel_pos_bias.relative_position_bias_table']
    own = model.state_dict()
    for i in range(4):
        table = own[f'layers.{i}.attn.relative_position_bias_table']
        expected = resize_bias_table(shared, (14, 14), (28, 28)) if i in (1, 3) else shared
        torch.testing.assert_close(table, expected, rtol=0, atol=0)
    unused = {k for k in teacher if k not in own and not k.endswith('relative_position_index')}
    assert unused == {'rel_pos_bias.relative_position_bias_table', 'mask_token', 'ln1.weight',
                      'ln1.bias'}  # the table became the blocks' tables; no mask, no final norm
    for key, value in own.items():
        if key in teacher:
            assert torch.equal(value, teacher[key]), key


# --------------------------------------------------------------------------- configs
def config(name):
    return Config.fromfile(os.path.join(ROOT, 'configs', 'det', name))


@pytest.mark.parametrize('size,arch,blocks,drop_path,decay', [
    ('s', 'small', (2, 5, 8, 11), 0.1, 0.7), ('b', 'base', (2, 5, 8, 11), 0.1, 0.7),
    ('l', 'large', (5, 11, 17, 23), 0.4, 0.8)])
def test_vitdet_recipes_match_their_sources(size, arch, blocks, drop_path, decay):
    cfg = config(f'conmim_vit-{size}_vitdet_mask-rcnn_lsj-100e_coco.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'ConMIMViTDet' and backbone.arch == arch
    assert backbone.global_attn_indices == blocks and backbone.window_size == 14
    assert backbone.out_indices == (blocks[-1], ) and backbone.drop_path_rate == drop_path
    assert backbone.init_cfg.type == 'Pretrained' and backbone.use_checkpoint
    assert cfg.model.neck.type == 'SimpleFPN' and cfg.model.neck.norm_cfg.type == 'LN2d'
    assert cfg.model.neck.in_channels == {'s': 384, 'b': 768, 'l': 1024}[size]
    assert cfg.model.rpn_head.num_convs == 2
    assert cfg.model.roi_head.bbox_head.type == 'Shared4Conv1FCBBoxHead'
    assert cfg.model.roi_head.mask_head.norm_cfg.type == 'LN2d'
    optim = cfg.optim_wrapper
    assert optim.type == 'DeviceAmpOptimWrapper' and optim.optimizer.type == 'AdamW'
    assert optim.optimizer.lr == 1e-4 and optim.optimizer.weight_decay == 0.1
    assert optim.paramwise_cfg.layer_decay_rate == decay
    assert cfg.train_cfg.max_iters == 184375 and cfg.param_scheduler[1].milestones == [163889,
                                                                                         177546]
    assert cfg.train_dataloader.batch_size * 32 == 64
    lsj = {t.type: t for t in cfg.train_dataloader.dataset.dataset.pipeline}
    assert lsj['RandomResize'].scale == (1024, 1024) and lsj['RandomResize'].ratio_range == (0.1,
                                                                                             2.0)
    assert lsj['RandomCrop'].crop_size == (1024, 1024)
    assert cfg.model.data_preprocessor.batch_augments[0].size == (1024, 1024)


def test_vitdet_25_epoch_variant_is_a_quarter_of_the_schedule():
    full = config('conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py')
    short = config('conmim_vit-b_vitdet_mask-rcnn_lsj-25e_coco.py')
    assert short.train_cfg.max_iters == round(full.train_cfg.max_iters / 4)
    assert short.param_scheduler[1].milestones == [m // 4 for m in
                                                   full.param_scheduler[1].milestones]
    assert short.param_scheduler[1].end == short.train_cfg.max_iters
    assert short.model == full.model and short.optim_wrapper == full.optim_wrapper


def test_pad_to_img_size_attends_over_the_img_size_grid_and_crops_back():
    torch.manual_seed(0)
    model = vitdet(img_size=224, window_size=7, pad_to_img_size=True)
    image = torch.randn(1, 3, 160, 96)
    with torch.no_grad():
        out = model(image)[0]
        model.pad_to_img_size = False
        full = model(torch.nn.functional.pad(image, (0, 128, 0, 64)))[0]
    assert out.shape == (1, 64, 10, 6)
    torch.testing.assert_close(out, full[..., :10, :6], rtol=0, atol=0)
    with pytest.raises(ValueError, match='featmap'):
        vitdet(pad_to_img_size=True, out_type='raw')
