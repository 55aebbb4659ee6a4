"""tools/analysis/visualize.py on a real photo with a freshly initialised checkpoint."""
import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools', 'analysis'))
CONFIG = os.path.join(ROOT, 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py')
IMAGE = ('/usr/share/doc/labelme-examples/examples/semantic_segmentation/data_dataset_voc/'
         'JPEGImages/2011_000003.jpg')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    import conmim_mm  # noqa: F401

    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.arch.num_layers = 2
    cfg.model.neck.hid_channels = 64
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
    # no --config: the one stored in the checkpoint is used; 56 px = a 14x14 token grid
    result = visualize.visualize(IMAGE, checkpoint, out, img_size=56, features=features)
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
    visualize.main([IMAGE, checkpoint, '--config', CONFIG, '--out', out, '--img-size', '28',
                    '--queries', '1,1', '5,2', '--encoder', 'student'])
    assert os.path.exists(out)
    with pytest.raises(SystemExit):
        visualize.main([IMAGE, checkpoint, '--out', out, '--img-size', '30'])


def test_recomputed_attention_matches_the_layer(checkpoint):
    """The [CLS] attention drawn is the softmax the last layer really applies."""
    import visualize
    _, model = visualize.load_model(None, checkpoint)
    backbone = model.teacher.module['backbone']
    attn = backbone.layers[-1].attn
    captured = {}

    def hook(module, args, kwargs, out):
        captured.update(x=args[0], bias=args[1] if len(args) > 1 else kwargs.get('rel_pos_bias'),
                        out=out)

    handle = attn.register_forward_hook(hook, with_kwargs=True)
    _, cls = visualize.tokens_and_cls_attention(backbone, torch.randn(1, 3, 28, 28))
    handle.remove()
    with torch.no_grad():
        weights = visualize.attention_weights(attn, captured['x'], captured['bias'])
        v = visualize.qkv_of(attn, captured['x'])[2]
        B, N, C = captured['x'].shape
        out = attn.proj((weights @ v).transpose(1, 2).reshape(B, N, C))
    torch.testing.assert_close(out, captured['out'], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cls, weights[0, :, 0, 1:].mean(0))
    assert cls.shape == (49, ) and torch.all(cls > 0)
