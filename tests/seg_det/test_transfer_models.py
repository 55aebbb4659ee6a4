"""The downstream configs as models: the ViT-B acceptance checks (configs build, every backbone
tensor comes from the pretraining checkpoint, 150-class logits at 512x512, boxes and masks) and
identical backbone features in mmpretrain, mmseg and mmdet from one checkpoint."""
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from conmim_mm.models.utils.relative_position import resize_bias_table
from tests.helpers.paths import ROOT
from tests.helpers.tiny_models import TINY_TRANSFER as TINY
from tests.helpers.tiny_models import save_pretraining_checkpoint

CONFIGS = {
    'cls': 'configs/cls/conmim_vit-b_ft_in1k.py',
    'seg': 'configs/seg/conmim_vit-b_upernet_ade20k.py',
    'det': 'configs/det/conmim_vit-b_mask-rcnn_coco.py',
}


def registry_of(scope):
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    elif scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS


def build(cfg):
    """Build ``cfg.model`` the way the Runner does: in the config's default scope."""
    scope = cfg.get('default_scope', 'mmpretrain')
    if cfg.get('data_preprocessor') is not None:  # as Runner does for mmpretrain-style configs
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(scope):
        model = registry_of(scope).build(cfg.model)
        model.init_weights()
    return model.eval()


def load_config(kind, checkpoint, prefix='backbone.', config=None):
    cfg = Config.fromfile(os.path.join(ROOT, config or CONFIGS[kind]))
    cfg.model.backbone.init_cfg.update(checkpoint=str(checkpoint), prefix=prefix)
    cfg.model.backbone.use_checkpoint = False
    return cfg


# --------------------------------------------------------------------------- ViT-B acceptance
# Full-size ViT-B models (about 2 minutes on a 2-core CPU): pytest -m "not slow" skips them.
acceptance = pytest.mark.slow


@pytest.fixture(scope='module')
def vit_b_checkpoint(tmp_path_factory):
    """A ConMIM ViT-B/16 pretraining checkpoint (student, teacher, projectors), as training saves."""
    path = tmp_path_factory.mktemp('vit_b') / 'conmim_vit-b_pretrain.pth'
    model = save_pretraining_checkpoint(path)
    state = {k: v for k, v in model.state_dict().items()
             if k.startswith('teacher.module.backbone.')}
    del model
    return path, state


def assert_backbone_is_pretrained(backbone, pretrained):
    """Every backbone tensor equals the pretrained one; tables equal the resized shared table."""
    shared = pretrained['rel_pos_bias.relative_position_bias_table']
    checked = 0
    for key, value in backbone.state_dict().items():
        if key.endswith('relative_position_index'):
            continue  # buffers computed from the token grid
        if key.endswith('attn.relative_position_bias_table'):
            window = backbone.get_submodule(key.rsplit('.', 1)[0]).window_size
            torch.testing.assert_close(value, resize_bias_table(shared, (14, 14), tuple(window)),
                                       rtol=0, atol=0, msg=key)
        elif key.startswith('ln2.'):
            assert key not in pretrained  # the norm after mean pooling is new in fine-tuning
            continue
        else:
            assert torch.equal(value, pretrained[key]), key
        checked += 1
    assert checked >= 12 * 10


@acceptance
@pytest.mark.parametrize('kind', ['cls', 'seg', 'det'])
def test_vit_b_backbone_equals_the_pretrained_teacher(vit_b_checkpoint, kind):
    path, state = vit_b_checkpoint
    teacher = {k[len('teacher.module.backbone.'):]: v for k, v in state.items()}
    cfg = load_config(kind, path, prefix='teacher.module.backbone.')
    if kind == 'det':
        cfg.model.test_cfg.rcnn.score_thr = 0.  # an untrained head scores low
    model = build(cfg)
    assert type(model.backbone).__name__ == 'ConMIMViT'
    assert_backbone_is_pretrained(model.backbone, teacher)
    if kind == 'cls':
        return

    gen = torch.Generator().manual_seed(0)
    if kind == 'seg':
        image = torch.randint(0, 256, (3, 512, 512), dtype=torch.uint8, generator=gen)
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=dict(img_shape=(512, 512), ori_shape=(512, 512),
                                             pad_shape=(512, 512), padding_size=[0, 0, 0, 0]))
        with torch.no_grad():
            out = model.test_step(dict(inputs=[image], data_samples=[sample]))[0]
        assert out.seg_logits.data.shape == (150, 512, 512)
        assert out.pred_sem_seg.data.shape == (1, 512, 512)
        assert torch.isfinite(out.seg_logits.data).all()
    else:
        image = torch.randint(0, 256, (3, 320, 480), dtype=torch.uint8, generator=gen)
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(img_shape=(320, 480), ori_shape=(320, 480),
                                             scale_factor=(1., 1.)))
        with torch.no_grad():
            out = model.test_step(dict(inputs=[image], data_samples=[sample]))[0]
        pred = out.pred_instances
        assert len(pred) > 0
        assert pred.bboxes.shape == (len(pred), 4) and pred.scores.shape == (len(pred), )
        assert pred.masks.shape == (len(pred), 320, 480) and pred.masks.dtype == torch.bool
        assert int(pred.labels.max()) < 80


@acceptance
def test_vit_b_checkpoint_loads_whole_into_vitdet_and_runs_at_1024(vit_b_checkpoint):
    """ViTDet config: strict loading through init_cfg (windowed blocks keep the 14x14 table,
    global blocks 2/5/8/11 get it resized to 64x64), every teacher tensor used except those a
    downstream backbone never has (mask token, final norm), then 1024x1024 on the CPU through
    backbone and pyramid: strides 4-64, 256 channels."""
    path, state = vit_b_checkpoint
    teacher = {k[len('teacher.module.backbone.'):]: v for k, v in state.items()}
    cfg = load_config('det', path, prefix='teacher.module.backbone.',
                      config='configs/det/conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py')
    model = build(cfg)
    backbone = model.backbone
    assert type(backbone).__name__ == 'ConMIMViTDet'
    assert_backbone_is_pretrained(backbone, teacher)
    windows = [tuple(layer.attn.window_size) for layer in backbone.layers]
    assert windows == [(64, 64) if i in (2, 5, 8, 11) else (14, 14) for i in range(12)]
    own = backbone.state_dict()
    unused = {k for k in teacher if k not in own and not k.endswith('relative_position_index')}
    assert unused == {'rel_pos_bias.relative_position_bias_table', 'mask_token', 'ln1.weight',
                      'ln1.bias'}
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = backbone(image)
        pyramid = model.neck(features)
    assert len(features) == 1 and features[0].shape == (1, 768, 64, 64)
    assert torch.isfinite(features[0]).all()
    assert [tuple(p.shape) for p in pyramid] == [(1, 256, 1024 // s, 1024 // s)
                                                 for s in (4, 8, 16, 32, 64)]


# --------------------------------------------------------------------------- three libraries
def test_identical_features_in_mmpretrain_mmseg_and_mmdet(tiny_pretraining_checkpoint):
    """The same 224x224 image through each library's data preprocessor and backbone."""
    gen = torch.Generator().manual_seed(1)
    image = torch.randint(0, 256, (3, 224, 224), dtype=torch.uint8, generator=gen)
    inputs, features = {}, {}
    for kind in ('cls', 'seg', 'det'):
        cfg = load_config(kind, tiny_pretraining_checkpoint[0],
                          prefix='teacher.module.backbone.')
        cfg.model.backbone.update(arch=TINY, img_size=224, out_type='featmap',
                                  out_indices=(0, 1, 2, 3))
        if kind == 'seg':
            cfg.model.data_preprocessor.size = (224, 224)
        model = build(cfg)
        with torch.no_grad():
            data = model.data_preprocessor(dict(inputs=[image]), False)
            inputs[kind] = data['inputs']
            features[kind] = model.backbone(data['inputs'])
    for kind in ('seg', 'det'):
        torch.testing.assert_close(inputs[kind], inputs['cls'], rtol=0, atol=1e-5)
        assert len(features[kind]) == 4
        for a, b in zip(features[kind], features['cls']):
            assert a.shape == (1, 64, 14, 14)
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_det_pyramid_neck_makes_strides_4_to_32():
    import conmim_mm.det  # noqa: F401
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):  # other tests may have set mmpretrain
        neck = MODELS.build(dict(type='ViTFeaturePyramid', in_channels=8,
                                 norm_cfg=dict(type='BN')))
    outs = neck([torch.randn(2, 8, 6, 10) for _ in range(4)])
    assert [o.shape[-2:] for o in outs] == [(24, 40), (12, 20), (6, 10), (3, 5)]
    with pytest.raises(ValueError, match='out_indices'):
        neck([torch.randn(2, 8, 6, 10)])


@pytest.mark.parametrize('path', sorted(
    os.path.join(d, f) for d in ('configs/cls', 'configs/seg', 'configs/det')
    for f in os.listdir(os.path.join(ROOT, d)) if f.endswith('.py')))
def test_every_downstream_config_parses(path):
    cfg = Config.fromfile(os.path.join(ROOT, path))
    backbone = cfg.model.backbone
    assert backbone.type in ('ConMIMViT', 'ConMIMViTDet') and backbone.with_mask_token is False
    assert backbone.init_cfg.type == 'Pretrained' and backbone.init_cfg.checkpoint == ''
    assert cfg.optim_wrapper.get('constructor') in (None,
                                                    'BackboneLayerDecayOptimWrapperConstructor')
