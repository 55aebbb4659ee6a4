"""tools/analysis/visualize.py on a real photo with a freshly initialised checkpoint, and the
attention maps it draws (attention weights equal to what ConMIMViT's fused forward applies)."""
import os
import sys

import numpy as np
import pytest
import torch

from tests.helpers.paths import ROOT

sys.path.insert(0, os.path.join(ROOT, 'tools', 'analysis'))
CONFIG = os.path.join(ROOT, 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py')
TINY_OPTIONS = {'model.backbone.arch.num_layers': 2, 'model.neck.hid_channels': 64}
IMAGE = ('/usr/share/doc/labelme-examples/examples/semantic_segmentation/data_dataset_voc/'
         'JPEGImages/2011_000003.jpg')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    import conmim_mm  # noqa: F401

    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(TINY_OPTIONS)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('vis') / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(cfg=cfg.pretty_text)), path)
    return path


@pytest.mark.skipif(not os.path.exists(IMAGE), reason='labelme-examples is not installed')
@pytest.mark.parametrize('features', ['backbone', 'projector'])
def test_visualize_writes_a_png(checkpoint, tmp_path, features):
    import visualize
    out = str(tmp_path / 'vis.png')
    # 56 px = a 14x14 token grid
    result = visualize.visualize(IMAGE, checkpoint, out, config=CONFIG, img_size=56,
                                 features=features, cfg_options=TINY_OPTIONS)
    assert os.path.getsize(out) > 10_000
    from PIL import Image
    assert Image.open(out).size[0] > Image.open(out).size[1]
    assert result['mask'].shape == (14, 14) and 0 < result['mask'].mean() < 1
    cls = result['cls_attention']
    assert cls.shape == (14, 14) and (cls >= 0).all() and 0 < cls.sum() <= 1 + 1e-5
    for (r, c), sim in zip(result['queries'], result['similarity']):
        assert sim.shape == (14, 14)
        assert sim[r, c] == pytest.approx(1.0, abs=1e-5)  # a patch is most similar to itself
        assert np.all(sim <= 1 + 1e-5)


@pytest.mark.skipif(not os.path.exists(IMAGE), reason='labelme-examples is not installed')
def test_visualize_cli(checkpoint, tmp_path):
    import visualize
    out = str(tmp_path / 'cli.png')
    options = ['--cfg-options', *(f'{k}={v}' for k, v in TINY_OPTIONS.items())]
    visualize.main([IMAGE, checkpoint, '--config', CONFIG, '--out', out, '--img-size', '28',
                    '--queries', '1,1', '5,2', '--encoder', 'student', *options])
    assert os.path.exists(out)
    with pytest.raises(SystemExit):  # not a multiple of the patch size
        visualize.main([IMAGE, checkpoint, '--config', CONFIG, '--out', out, '--img-size', '30',
                        *options])


def test_strict_loading_stops_on_a_checkpoint_of_another_model(checkpoint, tmp_path):
    import visualize
    with pytest.raises(RuntimeError, match='missing keys'):
        visualize.load_model(CONFIG, checkpoint)  # 2-layer checkpoint, 6-layer config


# --------------------------------------------------------------------------- attention maps
def tiny_backbone(**kwargs):
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    cfg = dict(type='ConMIMViT', arch=dict(embed_dims=32, num_layers=3, num_heads=2,
                                           feedforward_channels=64),
               img_size=28, patch_size=4, out_type='raw', final_norm=True,
               layer_scale_init_value=0.1, use_abs_pos_emb=False)
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    for p in model.parameters():  # non-trivial biases and tables
        p.data.add_(0.05 * torch.randn_like(p))
    model.eval()  # BEiTViT.train() returns None
    return model


@pytest.mark.parametrize('tables', ['shared', 'per-layer'])
def test_attention_weights_give_the_sdpa_forward(tables):
    """proj(attention_weights @ v) is what SDPABEiTAttention.forward returns, with the bias
    passed in (shared table) or built from the layer's own table."""
    import visualize
    kwargs = (dict(use_rel_pos_bias=False, use_shared_rel_pos_bias=True) if tables == 'shared'
              else dict(use_rel_pos_bias=True, use_shared_rel_pos_bias=False))
    backbone = tiny_backbone(**kwargs)
    attn = backbone.layers[1].attn
    x = torch.randn(2, 50, 32)
    bias = None
    if tables == 'shared':
        from conmim_mm.models.utils.relative_position import relative_position_bias
        table = backbone.rel_pos_bias
        bias = relative_position_bias(table.relative_position_bias_table, table.window_size,
                                      (7, 7))
    with torch.no_grad():
        expected = attn(x, bias)
        weights = visualize.attention_weights(attn, x, bias)
        _, _, v = attn.query_key_value(x)
        got = attn.proj((weights @ v).transpose(1, 2).reshape(2, 50, 32))
    assert weights.shape == (2, 2, 50, 50)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 50))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_forward_with_attention_is_forward_plus_each_layers_weights():
    import visualize
    backbone = tiny_backbone(use_rel_pos_bias=True, use_shared_rel_pos_bias=False)
    x = torch.randn(2, 3, 28, 28)
    inputs = []
    handles = [layer.attn.register_forward_hook(
        lambda m, args, out: inputs.append((m, args[0], args[1] if len(args) > 1 else None,
                                            out))) for layer in backbone.layers]
    with torch.no_grad():
        expected = backbone(x)
    for handle in handles:
        handle.remove()
    outs, weights = visualize.forward_with_attention(backbone, x)
    assert len(weights) == len(backbone.layers) == len(inputs)
    for out, want in zip(outs, expected):
        torch.testing.assert_close(out, want, rtol=0, atol=0)
    for w, (attn, h, bias, out) in zip(weights, inputs):
        _, _, v = attn.query_key_value(h)
        torch.testing.assert_close(attn.proj((w @ v).transpose(1, 2).reshape(h.shape)), out,
                                   rtol=1e-5, atol=1e-6)
    cls = weights[-1][0, :, 0, 1:].mean(0)
    tokens, drawn = visualize.tokens_and_cls_attention(backbone, x[:1])
    torch.testing.assert_close(drawn, cls)  # what the picture shows: the last layer's [CLS] row
    torch.testing.assert_close(tokens, outs[-1][0])
