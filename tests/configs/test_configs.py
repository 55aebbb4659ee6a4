import functools
import json
import os

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from tests.helpers.paths import ROOT
from tests.helpers.tools import tool_fails


def backbone_params(model):
    return sum(p.numel() for p in model.backbone.parameters())


@pytest.mark.parametrize('name,width,depth,millions', [
    ('conmim_vit-s', 384, 12, 21.7),
    ('conmim_vit-b', 768, 12, 85.8),
    ('conmim_vit-l', 1024, 24, 303.3),
])
def test_pretrain_configs_build(name, width, depth, millions):
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/pretrain', name + '.py'))
    with torch.device('meta'):  # the structure only: no memory, no initialisation
        model = MODELS.build(cfg.model)
    assert model.backbone.embed_dims == width and len(model.backbone.layers) == depth
    assert model.neck.fc0.in_features == width
    assert backbone_params(model) / 1e6 == pytest.approx(millions, rel=0.01)
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert cfg.auto_scale_lr.base_batch_size == 2048


def test_vit_l_recipe_differs_where_the_paper_says():
    b = Config.fromfile(os.path.join(ROOT, 'configs/pretrain/conmim_vit-b.py'))
    l_cfg = Config.fromfile(os.path.join(ROOT, 'configs/pretrain/conmim_vit-l.py'))
    assert l_cfg.model.backbone.layer_scale_init_value == 1e-5
    assert l_cfg.optim_wrapper.optimizer.lr == 7.5e-4 and l_cfg.optim_wrapper.clip_grad.max_norm == 1.0
    mask = [t for t in l_cfg.train_dataloader.dataset.pipeline if t['type'] == 'ConMIMMaskGenerator']
    assert mask[0]['strategy'] == 'random' and mask[0]['mask_ratio'] == 0.75
    assert l_cfg.train_cfg.max_epochs == 1600 and b.train_cfg.max_epochs == 800


@pytest.mark.slow
def test_vit_b_loss_on_random_224_views(max_iters):
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/pretrain/conmim_vit-b.py'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.manual_seed(0)
    views = [torch.randn(2, 3, 224, 224) for _ in range(2)]
    samples = []
    for _ in range(2):
        mask = torch.zeros(196, dtype=torch.long)
        mask[torch.randperm(196)[:75]] = 1
        samples.append(DataSample().set_mask(mask.view(14, 14)))
    with torch.no_grad():
        losses = model.loss(views, samples)
    assert torch.isfinite(losses['loss'])
    # random features: about log(196)
    assert abs(losses['loss'].item() - torch.log(torch.tensor(196.)).item()) < 1.5


@pytest.mark.parametrize('name', ['conmim_vit-s', 'conmim_vit-b', 'conmim_vit-l'])
def test_imagenet_pretraining_drops_the_last_partial_batch(name, fashion_mnist):
    """As the official loader (drop_last=True): 625 steps per epoch at 2048 images per step
    on ImageNet's 1,281,167 images, not 626. The config's loader settings on a small stand-in
    dataset: 130 images at batch 64 give 2 steps, not 3."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    import conmim_mm  # noqa: F401
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/pretrain', name + '.py'))
    loader = Runner.build_dataloader(dict(
        cfg.train_dataloader, num_workers=0, persistent_workers=False, pin_memory=False,
        dataset=dict(type='SplitFashionMNIST', data_root=fashion_mnist, indices=130,
                     pipeline=[dict(type='PackInputs')])))
    assert cfg.train_dataloader.batch_size == 64 and len(loader) == 2
    assert sum(len(batch['inputs']) for batch in loader) == 128


def test_missing_imagenet_gives_one_clear_message(tmp_path):
    stderr = tool_fails('tools/train.py', 'configs/pretrain/conmim_vit-b.py', '--work-dir',
                        tmp_path)  # in this process
    assert 'data/imagenet' in stderr and 'Expected layout' in stderr
    assert 'Traceback' not in stderr


def _fashion_mnist_eval_datasets(cfg):
    """(where, dataset cfg) of every evaluation dataset a Fashion-MNIST config names."""
    found = []
    for key in ('val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            found.append((key, cfg[key]['dataset']))
    for hook in cfg.get('custom_hooks', []):
        if hook.get('val_dataloader'):
            found.append((hook['type'] + '.val', hook['val_dataloader']['dataset']))
    return found


@functools.lru_cache(maxsize=None)
def part_and_length(dataset_json):
    """What a dataset config reads: (part, number of images). Cached: the configs below share
    their dataset dicts, and each build of a 50k split takes seconds."""
    from mmpretrain.registry import DATASETS
    dataset = DATASETS.build(json.loads(dataset_json))
    return dataset.part, len(dataset)


# one worker takes all five, so that the cache serves them
@pytest.mark.xdist_group('fashion_mnist_splits')
@pytest.mark.parametrize('path', [
    'configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py',
    'configs/benchmarks/conmim_vit-t-p4_fashion-mnist_bench.py',
    'configs/benchmarks/mae_vit-t-p4_fashion-mnist.py',
    'configs/benchmarks/simmim_vit-t-p4_fashion-mnist.py',
    'configs/benchmarks/finetune_mae-vit-t-p4_fashion-mnist.py',
])
def test_fashion_mnist_splits_of_every_config(path, fashion_mnist):
    """Training reads the first 50k training images; the kNN monitor (a choice made during
    pretraining) classifies the validation split, the last 10k training images; the final
    evaluation of a fine-tuning recipe reads the 10k test images. (mmpretrain's FashionMNIST
    reads the training file unless split='test': test_mode alone only warns.)"""
    from mmengine.registry import init_default_scope
    import conmim_mm  # noqa: F401
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(os.path.join(ROOT, path))
    expected = dict(train_dataloader=('train', 50000), val_dataloader=('test', 10000),
                    test_dataloader=('test', 10000), bank_dataloader=('train', 50000),
                    knn_val_dataloader=('val', 10000))
    found = [('train_dataloader', cfg.train_dataloader.dataset)]
    found += [(key, cfg[key].dataset) for key in ('val_dataloader', 'test_dataloader')
              if cfg.get(key)]
    for hook in cfg.get('custom_hooks', []):
        if hook['type'] == 'KNNMonitorHook':
            found += [('bank_dataloader', hook.bank_dataloader.dataset),
                      ('knn_val_dataloader', hook.val_dataloader.dataset)]
    assert len(found) > 1, f'{path} evaluates nothing'
    for where, dataset_cfg in found:
        dataset_cfg = dict(dataset_cfg.to_dict(), data_root=fashion_mnist, indices=None)
        dataset_cfg.pop('pipeline', None)  # what is read does not depend on it
        assert part_and_length(json.dumps(dataset_cfg, sort_keys=True)) == expected[where], where


def test_fashion_mnist_path_check_knows_the_idx_files(tmp_path, fashion_mnist):
    from conmim_mm.datasets.checks import DatasetNotFoundError, check_dataset_paths
    for split in ('train', 'test'):  # the prepared data passes for both splits
        check_dataset_paths(dict(type='FashionMNIST', data_root=fashion_mnist, split=split))
    for split in ('train', 'val', 'test'):
        check_dataset_paths(dict(type='SplitFashionMNIST', data_root=fashion_mnist, split=split))
    partial = tmp_path / 'fm'
    partial.mkdir()
    for name in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'):
        (partial / name).symlink_to(os.path.join(fashion_mnist, name))
    check_dataset_paths(dict(type='FashionMNIST', data_root=str(partial)))
    with pytest.raises(DatasetNotFoundError, match='t10k-images-idx3-ubyte'):
        check_dataset_paths(dict(type='FashionMNIST', data_root=str(partial), split='test'))


# --------------------------------------------------------------------------- config structure
VIT_B_SHAPES = os.path.join(ROOT, 'tests', 'fixtures', 'vit_b_state_shapes_817aadb.json')


@pytest.mark.parametrize('path', sorted(json.load(open(VIT_B_SHAPES))))
def test_vit_b_configs_build_the_models_they_built_before_the_bases(path):
    """Every ViT-B config gives the model (state-dict names and shapes) it gave at commit
    817aadb, before the configs were rebuilt on configs/_base_/ (fixture written by building
    the configs of that commit). Built on the meta device: names and shapes without the
    seconds of random initialisation a full-size model takes on a CPU."""
    from mmengine.registry import DefaultScope
    expected = json.load(open(VIT_B_SHAPES))[path]
    cfg = Config.fromfile(os.path.join(ROOT, path))
    scope = cfg.get('default_scope', 'mmpretrain')
    if cfg.get('data_preprocessor') is not None:
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    if scope == 'mmseg':
        import conmim_mm.seg  # noqa: F401
        from mmseg.registry import MODELS as registry
    elif scope == 'mmdet':
        import conmim_mm.det  # noqa: F401
        from mmdet.registry import MODELS as registry
    else:
        registry = MODELS
    with DefaultScope.overwrite_default_scope(scope), torch.device('meta'):
        model = registry.build(cfg.model)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == expected


def test_demo_pretraining_and_fine_tuning_share_one_architecture():
    pretrain = Config.fromfile(os.path.join(
        ROOT, 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py')).model.backbone
    for path in ('configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py',
                 'configs/benchmarks/finetune_mae-vit-t-p4_fashion-mnist.py',
                 'configs/benchmarks/mae_vit-t-p4_fashion-mnist.py'):
        backbone = Config.fromfile(os.path.join(ROOT, path)).model.backbone
        assert backbone.arch == pretrain.arch and backbone.patch_size == pretrain.patch_size, path


@pytest.mark.parametrize('paths,size', [
    (('pretrain/conmim_vit-b.py', 'cls/conmim_vit-b_ft_in1k.py',
      'seg/conmim_vit-b_upernet_ade20k.py'), None),
    (('pretrain/conmim_vit-t-p4_fashion-mnist.py', 'cls/conmim_vit-t-p4_ft_fashion-mnist.py',
      'benchmarks/simmim_vit-t-p4_fashion-mnist.py'), None),
    (('pretrain/conmim_vit-l.py', 'cls/conmim_vit-l_ft_in1k.py',
      'det/conmim_vit-l_mask-rcnn_coco.py'), 'vit_l_p16'),
    (('pretrain/conmim_vit-s.py', 'seg/conmim_vit-s_upernet_ade20k.py'), 'vit_s_p16'),
])
def test_one_architecture_dict_per_size(paths, size):
    """Pretraining and transfer take the ViT of one size from one dict (`conmim_vit` of
    vit-b-p16.py / vit-t-p4.py, with the `vit_l_p16` / `vit_s_p16` changes on top), which each
    config then gives its pretraining or downstream settings."""
    arch_keys = ('type', 'arch', 'patch_size', 'layer_scale_init_value', 'use_abs_pos_emb')
    archs = []
    for path in paths:
        cfg = Config.fromfile(os.path.join(ROOT, 'configs', path))
        vit = dict(cfg.conmim_vit, **(cfg[size] if size else {}))
        assert all(cfg.model.backbone[k] == vit[k] for k in arch_keys), path
        archs.append({k: vit[k] for k in arch_keys})
    assert all(arch == archs[0] for arch in archs), archs


@pytest.mark.parametrize('path,scale', [
    ('configs/pretrain/conmim_vit-b.py', 0.1), ('configs/pretrain/conmim_vit-l.py', 1e-5),
    ('configs/pretrain/conmim_vit-t-p4_fashion-mnist.py', 0.1)])
def test_pretraining_init_follows_the_official_code(path, scale):
    """trunc_normal_(std=.02, a=-.02, b=.02) for the ViT's and the projector's Linear layers
    (official modeling_pretrain.py), cls and mask tokens included. Two of the config's
    layers (the initialisation is per layer): a full ViT-L takes seconds to initialise."""
    cfg = Config.fromfile(os.path.join(ROOT, path))
    backbone = cfg.model.backbone
    if isinstance(backbone.arch, str):
        backbone.arch = dict(MODELS.get(backbone.type).arch_zoo[backbone.arch])
    backbone.arch['num_layers'] = 2
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.backbone.layers[0].gamma_1.flatten()[0].item() == pytest.approx(scale)
    linears = [m for m in (*model.backbone.modules(), *model.neck.modules())
               if isinstance(m, torch.nn.Linear)]
    assert len(linears) >= 4 * len(model.backbone.layers) + 3
    tensors = [model.backbone.cls_token, model.backbone.mask_token,
               model.backbone.patch_embed.projection.weight] + [m.weight for m in linears]
    for t in tensors:
        assert t.abs().max() <= 0.02 + 1e-7
    first = model.neck.fc0.weight
    assert 0.005 < first.std().item() < 0.0125  # +-1 sigma truncation: std 0.54 x 0.02


def test_recipes_match_their_sources():
    def load(path):
        return Config.fromfile(os.path.join(ROOT, 'configs', path))
    vit_l = load('cls/conmim_vit-l_ft_in1k.py')  # MAE ViT-L: blr 1e-3 x 1024 / 256
    assert vit_l.optim_wrapper.optimizer.lr == 4e-3 and vit_l.train_dataloader.batch_size == 128
    assert vit_l.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.75
    assert vit_l.model.backbone.drop_path_rate == 0.2 and vit_l.train_cfg.max_epochs == 50
    assert load('seg/conmim_vit-l_upernet_ade20k.py').model.backbone.drop_path_rate == 0.2
    for size, arch, epochs in (('s', 'small', 10), ('b', 'base', 10), ('l', 'large', 5)):
        cfg = load(f'cls/conmim_vit-{size}_ft_in1k-384px.py')
        assert cfg.model.backbone.arch == arch and cfg.model.backbone.img_size == 384
        assert cfg.train_cfg.max_epochs == epochs  # 10 % of the 224 schedule
    for path in ('det/conmim_vit-b_mask-rcnn_coco.py', 'det/conmim_vit-s_mask-rcnn_coco.py',
                 'det/conmim_vit-l_mask-rcnn_coco.py'):
        assert "not the paper's" in open(os.path.join(ROOT, 'configs', path)).read()


@pytest.mark.parametrize('size', ['s', 'b', 'l'])
def test_384px_evaluation_resizes_the_short_side_and_crops_the_centre(size, tmp_path):
    """As the official code (BEiT's build_transform, crop_pct 1.0 above 224 px): the short side
    to 384 (bicubic), then the central 384x384; a squashing Resize would keep no aspect."""
    import numpy as np
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    from PIL import Image
    import conmim_mm  # noqa: F401
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(os.path.join(ROOT, f'configs/cls/conmim_vit-{size}_ft_in1k-384px.py'))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)  # H x W, landscape
    path = tmp_path / 'image.png'
    Image.fromarray(image).save(path)
    packed = Compose(cfg.val_dataloader.dataset.pipeline)(dict(img_path=str(path)))
    ours = packed['inputs'].numpy().transpose(1, 2, 0)  # BGR as mmcv loads it
    resized = Image.fromarray(image).resize((640, 384), Image.BICUBIC)  # short side 300 -> 384
    left = (640 - 384) // 2
    official = np.asarray(resized)[:, left:left + 384, ::-1]
    assert ours.shape == (384, 384, 3)
    assert np.abs(ours.astype(int) - official.astype(int)).max() <= 1
