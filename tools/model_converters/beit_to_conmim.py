"""Convert official ConMIM / BEiT checkpoints and timm ``Beit`` weights to this package's layout.

    python tools/model_converters/beit_to_conmim.py conmim_base_1k_800e_ft.pth conmim_vit-b_ft.pth

The released ConMIM models (and BEiT's, and timm's ``Beit``) name their tensors ``blocks.i.*``,
``norm1``, ``mlp.fc1``, ``gamma_1``, ``attn.q_bias``, ``fc_norm``, ``head``, ...; this package's
``ConMIMViT`` keeps mmpretrain ``BEiTViT`` names. The output holds ``backbone.*`` (and ``head.fc.*``
when the input has a classifier), so it can be

* evaluated:  ``python tools/test.py configs/cls/conmim_vit-b_ft_in1k.py OUT.pth`` (a fine-tuned
  model with per-block relative position tables and mean pooling, as released), or
* fine-tuned: ``--cfg-options model.backbone.init_cfg.checkpoint=OUT.pth``.

Pretraining-only tensors (``lm_head``, the ConMIM ``projectors``, timm's constant ``k_bias``) and
``relative_position_index`` buffers are dropped. Any other unknown key is an error.
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from conmim_mm.engine import CheckpointLoadError  # noqa: E402  (weights-only loaders)
from conmim_mm.models.utils.pretrained import read_state_dict  # noqa: E402

RULES = [  # (pattern, replacement) applied to keys without the container prefix
    (r'^cls_token$', 'backbone.cls_token'),
    (r'^mask_token$', 'backbone.mask_token'),
    (r'^pos_embed$', 'backbone.pos_embed'),
    (r'^patch_embed\.proj\.', 'backbone.patch_embed.projection.'),
    (r'^rel_pos_bias\.relative_position_bias_table$',
     'backbone.rel_pos_bias.relative_position_bias_table'),
    (r'^blocks\.(\d+)\.norm1\.', r'backbone.layers.\1.ln1.'),
    (r'^blocks\.(\d+)\.norm2\.', r'backbone.layers.\1.ln2.'),
    (r'^blocks\.(\d+)\.attn\.(qkv\.weight|q_bias|v_bias|proj\.weight|proj\.bias|'
     r'relative_position_bias_table)$', r'backbone.layers.\1.attn.\2'),
    (r'^blocks\.(\d+)\.gamma_([12])$', r'backbone.layers.\1.gamma_\2'),
    (r'^blocks\.(\d+)\.mlp\.fc1\.', r'backbone.layers.\1.ffn.layers.0.0.'),
    (r'^blocks\.(\d+)\.mlp\.fc2\.', r'backbone.layers.\1.ffn.layers.1.'),
    (r'^norm\.', 'backbone.ln1.'),      # final norm ([CLS] models and pretraining)
    (r'^fc_norm\.', 'backbone.ln2.'),   # norm after mean pooling
    (r'^head\.(weight|bias)$', r'head.fc.\1'),
]
DROPPED = [r'relative_position_index$', r'\.k_bias$', r'^lm_head\.', r'^projectors\.',
           r'^head\.', r'^blocks\.\d+\.attn\.q_norm', r'^blocks\.\d+\.attn\.k_norm']
UNSUPPORTED = {
    r'^blocks\.\d+\.attn\.qkv\.bias$': 'a full qkv bias (this ViT uses BEiT q/v biases)',
    r'^blocks\.\d+\.(ls1|ls2)\.': 'timm LayerScale modules (a plain ViT, not a Beit)',
}


def convert(state_dict: dict) -> OrderedDict:
    """Map official/timm BEiT-layout keys to ``backbone.*``/``head.fc.*``; raise on unknown keys.

    ``state_dict``: the weights, as ``read_state_dict`` takes them out of a checkpoint file."""
    if any(k.startswith('backbone.layers.') for k in state_dict):
        raise ValueError('This checkpoint already has the ConMIMViT layout (backbone.layers.*): '
                         'use it as it is.')
    out, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        for pattern, reason in UNSUPPORTED.items():
            if re.search(pattern, key):
                raise ValueError(f'{key}: {reason} cannot be converted to ConMIMViT.')
        for pattern, repl in RULES:
            if re.search(pattern, key):
                out[re.sub(pattern, repl, key)] = value
                break
        else:
            if not any(re.search(p, key) for p in DROPPED):
                unknown.append(key)
    if unknown:
        raise ValueError(f'{len(unknown)} keys have no ConMIMViT counterpart: {unknown[:20]}. '
                         'Is this a BEiT-style ViT (blocks.i.attn.q_bias, gamma_1, ...)?')
    if not any(k.startswith('backbone.layers.') for k in out):
        raise ValueError('No transformer block (blocks.i.*) found: not a BEiT/ConMIM checkpoint.')
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official ConMIM/BEiT checkpoint or timm Beit state dict '
                        '(a path or a URL)')
    parser.add_argument('dst', help='output file')
    args = parser.parse_args(argv)
    # Weights-only, local files and URLs (conmim_mm/engine/checkpoint_loaders.py); the
    # argparse Namespace the official files hold ('args') is on the package's allow-list.
    try:
        out = convert(read_state_dict(args.src, logger='silent')[0])
    except (FileNotFoundError, CheckpointLoadError, ValueError) as err:  # NoStateDictError too
        sys.exit(f'error: {err}')
    torch.save({'state_dict': out, 'meta': dict(source=osp.abspath(args.src))}, args.dst)
    parts = sorted({k.split('.')[0] for k in out})
    print(f'wrote {len(out)} tensors ({", ".join(parts)}) to {args.dst}')


if __name__ == '__main__':
    main()
