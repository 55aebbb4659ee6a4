"""What a ConMIM model learned, in one picture.

For one image and a checkpoint, writes a PNG with: the image, the image with its patch mask
(as drawn by the config's mask generator), the [CLS] attention of the last layer averaged over
heads, and the teacher's patch-to-patch cosine similarity map for a few query patches (marked
by a square).

    python tools/analysis/visualize.py IMAGE CHECKPOINT --config CONFIG [--out out.png]
        [--img-size 224] [--queries 3,3 7,7] [--features backbone|projector] [--encoder teacher]
        [--cfg-options k=v ...]

``--config`` is the pretraining config the checkpoint was trained with (plus the
``--cfg-options`` the run used). The copy mmengine stores in the checkpoint (``meta.cfg``) is
Python text that would be executed to be read, so it is never used: a checkpoint cannot run
code through this tool. The weights are loaded weights-only and strictly.
Images are resized (bicubic) to ``--img-size``; any multiple of the patch size works.
"""
import argparse
import os
import os.path as osp
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='ConMIM similarity / attention maps')
    parser.add_argument('image')
    parser.add_argument('checkpoint')
    parser.add_argument('--config', required=True,
                        help='the pretraining config of the checkpoint (required: the config '
                        'stored inside a checkpoint is never executed)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='the overrides the training run used, e.g. '
                        'model.backbone.arch.num_layers=6')
    parser.add_argument('--out', default='conmim_vis.png')
    parser.add_argument('--img-size', type=int,
                        help="resize to this side (default: the backbone's img_size)")
    parser.add_argument('--queries', nargs='+', default=None,
                        help='query patches as row,col on the token grid (default: 4 spread '
                        'over the image)')
    parser.add_argument('--features', choices=['backbone', 'projector'], default='backbone',
                        help='similarity of backbone tokens (default) or projected tokens')
    parser.add_argument('--encoder', choices=['teacher', 'student'], default='teacher')
    parser.add_argument('--seed', type=int, default=0, help='seed of the drawn mask')
    return parser.parse_args(argv)


def load_model(config, checkpoint, cfg_options=None):
    """Build the model from ``config`` and load ``checkpoint`` strictly, weights-only."""
    import conmim_mm  # noqa: F401  (registers ConMIM and the weights-only checkpoint loaders)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS

    if not config:
        raise SystemExit('Pass the config the checkpoint was trained with: --config CONFIG. The '
                         'copy stored inside a checkpoint is Python text and is never executed.')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    return cfg, model.eval()


def find_mask_generator(cfg):
    """The mask generator transform of the training pipeline (or a BEiT-like default)."""
    from mmpretrain.registry import TRANSFORMS
    pipeline = cfg.get('train_dataloader', {}).get('dataset', {}).get('pipeline', [])
    for step in pipeline:
        if 'Mask' in step.get('type', ''):
            return TRANSFORMS.build(step)
    patch = cfg.model.backbone.get('patch_size', 16)
    return TRANSFORMS.build(dict(type='ConMIMMaskGenerator', patch_size=patch))


def load_image(path, size, cfg):
    """(H, W, 3) uint8 RGB image resized to ``size`` and its normalised (1, 3, H, W) tensor."""
    from PIL import Image
    img = np.array(Image.open(path).convert('RGB').resize((size, size), Image.BICUBIC))
    pre = cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor') or {}
    mean = torch.tensor(pre.get('mean', [123.675, 116.28, 103.53]), dtype=torch.float32)
    std = torch.tensor(pre.get('std', [58.395, 57.12, 57.375]), dtype=torch.float32)
    x = torch.from_numpy(img).float().permute(2, 0, 1)
    x = (x - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)
    return img, x.unsqueeze(0)


def encoders(model, which):
    teacher = getattr(getattr(model, 'teacher', None), 'module', None)
    if which == 'teacher' and teacher is not None:
        return teacher['backbone'], teacher['neck']
    return model.backbone, getattr(model, 'neck', None)


def attention_weights(attn, x, rel_pos_bias=None):
    """The softmax attention (B, heads, N, N) that ``attn(x, rel_pos_bias)`` applies, for a
    ``ConMIMViT`` attention layer (its fused kernel never materialises it)."""
    from conmim_mm.models.utils.relative_position import relative_position_bias
    q, k, _ = attn.query_key_value(x)
    logits = (q * attn.scale) @ k.transpose(-2, -1)
    if rel_pos_bias is None and attn.relative_position_bias_table is not None:
        rel_pos_bias = relative_position_bias(attn.relative_position_bias_table,
                                              attn.window_size, attn.window_size)
    if rel_pos_bias is not None:
        logits = logits + rel_pos_bias.unsqueeze(0).to(logits.dtype)
    return logits.softmax(dim=-1)


@torch.no_grad()
def forward_with_attention(backbone, x, mask=None):
    """``backbone(x, mask)`` and, per layer, the softmax attention (B, heads, N, N) it applied,
    computed from each layer's real inputs (caught by forward pre-hooks)."""
    inputs = []

    def keep_input(module, args, kwargs):
        inputs.append((module, args[0], args[1] if len(args) > 1 else
                       kwargs.get('rel_pos_bias')))

    handles = [layer.attn.register_forward_pre_hook(keep_input, with_kwargs=True)
               for layer in backbone.layers]
    try:
        outs = backbone(x, mask)
    finally:
        for handle in handles:
            handle.remove()
    return outs, [attention_weights(attn, h, bias) for attn, h, bias in inputs]


@torch.no_grad()
def tokens_and_cls_attention(backbone, x):
    """Final tokens (N, D) and last-layer [CLS]->patch attention averaged over heads (L,)."""
    out, attention = forward_with_attention(backbone, x)
    tokens = (out[-1] if isinstance(out, (tuple, list)) else out)[0]
    return tokens, attention[-1][0, :, 0, 1:].mean(dim=0)


def default_queries(grid):
    gh, gw = grid
    return [(gh // 4, gw // 4), (gh // 4, 3 * gw // 4), (gh // 2, gw // 2),
            (3 * gh // 4, gw // 4)]


def visualize(image, checkpoint, out, config=None, img_size=None, queries=None,
              features='backbone', encoder='teacher', seed=0, cfg_options=None):
    """Write the PNG; returns a dict with the arrays drawn (for tests and notebooks)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    cfg, model = load_model(config, checkpoint, cfg_options)
    backbone, neck = encoders(model, encoder)
    patch = getattr(backbone, 'patch_size', None)
    if not isinstance(patch, int):
        patch = cfg.model.backbone.get('patch_size', 16)
    size = img_size or cfg.model.backbone.get('img_size', 224)
    if size % patch:
        raise SystemExit(f'--img-size {size} is not a multiple of the patch size {patch}.')
    grid = (size // patch, size // patch)
    img, x = load_image(image, size, cfg)

    random.seed(seed)
    np.random.seed(seed)
    mask = np.asarray(find_mask_generator(cfg).transform(dict(img=img))['mask'],
                      dtype=bool).reshape(grid)

    tokens, cls_attn = tokens_and_cls_attention(backbone, x)
    extra = getattr(backbone, 'num_extra_tokens', 1)
    if features == 'projector':
        if neck is None:
            raise SystemExit('This model has no projector; use --features backbone.')
        tokens = neck((tokens, ))[0]
    patches = F.normalize(tokens[extra:].float(), dim=-1)
    queries = queries or default_queries(grid)
    sims = []
    for r, c in queries:
        if not (0 <= r < grid[0] and 0 <= c < grid[1]):
            raise SystemExit(f'query {r},{c} is outside the {grid[0]}x{grid[1]} token grid.')
        sims.append((patches @ patches[r * grid[1] + c]).view(grid).numpy())
    cls_map = cls_attn.view(grid).numpy()

    ncol = 3 + len(queries)
    fig, axes = plt.subplots(1, ncol, figsize=(2.4 * ncol, 2.8))
    axes[0].imshow(img)
    axes[0].set_title('image')
    shown = img.copy()
    big = np.kron(mask, np.ones((patch, patch), dtype=bool))
    shown[big] = (0.35 * shown[big] + 0.65 * np.array([40, 40, 40])).astype(np.uint8)
    axes[1].imshow(shown)
    axes[1].set_title(f'mask ({mask.mean():.0%})')
    axes[2].imshow(img)
    axes[2].imshow(cls_map, cmap='inferno', alpha=0.6, extent=(0, size, size, 0),
                   interpolation='nearest')
    axes[2].set_title('[CLS] attention')
    for ax, (r, c), sim in zip(axes[3:], queries, sims):
        ax.imshow(sim, cmap='viridis', vmin=-1, vmax=1, extent=(0, size, size, 0),
                  interpolation='nearest')
        ax.add_patch(Rectangle((c * patch, r * patch), patch, patch, fill=False,
                               edgecolor='red', linewidth=2))
        ax.set_title(f'{encoder} sim. ({r},{c})')
    for ax in axes:
        ax.axis('off')
    fig.suptitle(f'{osp.basename(image)} | {osp.basename(checkpoint)} | {features} tokens',
                 fontsize=9)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return dict(mask=mask, cls_attention=cls_map, similarity=sims, queries=queries)


def main(argv=None):
    args = parse_args(argv)
    queries = None
    if args.queries:
        queries = [tuple(int(v) for v in q.split(',')) for q in args.queries]
    from conmim_mm.engine import CheckpointLoadError
    try:
        visualize(args.image, args.checkpoint, args.out, config=args.config,
                  img_size=args.img_size, queries=queries, features=args.features,
                  encoder=args.encoder, seed=args.seed, cfg_options=args.cfg_options)
    except CheckpointLoadError as err:
        sys.exit(f'error: {err}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
