"""Strict loading of pretrained weights into a ``ConMIMViT``.

mmengine's ``PretrainedInit`` loads with ``strict=False`` and only logs missing keys, so a
checkpoint in the wrong key layout leaves a silently random backbone. ``load_pretrained_backbone``
does what ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)`` asks, then fails with
the list of keys that did not fit. Only these differences are expected and accepted:

* the shared pretraining table ``rel_pos_bias.relative_position_bias_table`` becomes one copy per
  layer when the backbone has per-layer tables (``use_rel_pos_bias=True``), as BEiT fine-tunes;
* tables are resized (bicubic, the same resize ``ConMIMViT`` applies on the fly) when the
  backbone's ``img_size`` differs from pretraining; ``relative_position_index`` buffers are
  recomputed rather than loaded;
* ``mask_token`` and the final norm ``ln1`` of the checkpoint are not used by a backbone built
  with ``with_mask_token=False`` / ``final_norm=False``;
* ``ln2``, the norm after mean pooling (``out_type='avg_featmap'``), is new in fine-tuning.
"""
import math
import os.path as osp
from typing import Dict, List, Tuple

import torch
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import CheckpointLoader

from .relative_position import NUM_CLS_ENTRIES, resize_bias_table

SHARED_TABLE = 'rel_pos_bias.relative_position_bias_table'
CONVERTER_HINT = ('Checkpoints of the official ConMIM/BEiT code or timm `Beit` models use other '
                  'key names: convert them with tools/model_converters/beit_to_conmim.py.')


class PretrainedMismatchError(RuntimeError):
    """The pretrained checkpoint does not fit the backbone."""


class NoStateDictError(PretrainedMismatchError, ValueError):
    """The checkpoint file holds no state dict of tensors."""


# Where checkpoint files keep their weights: mmengine ('state_dict'), the official ConMIM / BEiT /
# DeiT code ('model'), some DistributedDataParallel saves ('module'). The first key of this order
# that holds a dict is the state dict; a file with none of them is a state dict itself.
STATE_DICT_KEYS = ('state_dict', 'model', 'module')


def unwrap_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint (see ``STATE_DICT_KEYS``)."""
    for key in STATE_DICT_KEYS:
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def read_state_dict(checkpoint: str, map_location='cpu', logger='current'
                    ) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Load ``checkpoint`` (a path or URL) weights-only and return its state dict and the whole
    loaded object: the one reader of the loader below and the model converters
    (``logger``: as ``CheckpointLoader.load_checkpoint``'s).

    Raises:
        FileNotFoundError: a local path that does not exist.
        CheckpointLoadError: an unreadable or unsafe file (the package's weights-only loaders).
        NoStateDictError: the file holds no state dict of tensors.
    """
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'{checkpoint} does not exist')
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location=map_location,
                                              logger=logger)
    state = unwrap_state_dict(loaded)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise NoStateDictError(f'{checkpoint!r} holds no state dict of tensors.')
    return state, loaded


def _window_of(table: torch.Tensor) -> Tuple[int, int]:
    """The square token grid a (num_distances, heads) table was built for."""
    side = math.isqrt(table.shape[0] - NUM_CLS_ENTRIES)
    if side * side != table.shape[0] - NUM_CLS_ENTRIES or side % 2 == 0:
        raise PretrainedMismatchError(
            f'Cannot tell the token grid of a relative position table with {table.shape[0]} rows '
            '(expected (2h-1)^2 + 3 for a square h x h grid).')
    return (side + 1) // 2, (side + 1) // 2


def _read_state_dict(checkpoint: str, prefix: str, map_location) -> Dict[str, torch.Tensor]:
    if not checkpoint:
        raise PretrainedMismatchError(
            'The backbone asks for pretrained weights (init_cfg type "Pretrained") but no '
            'checkpoint was given. Pass --cfg-options model.backbone.init_cfg.checkpoint=PATH '
            '(a ConMIM pretraining checkpoint, or the file made by '
            'tools/model_converters/extract_backbone.py), or train from scratch with '
            '--cfg-options model.backbone.init_cfg=None.')
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Pretrained checkpoint {checkpoint!r} does not exist (set by '
                                'model.backbone.init_cfg.checkpoint).')
    state, _ = read_state_dict(checkpoint, map_location)
    if not prefix:
        return dict(state)
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    if prefix == 'backbone.' and any(k.startswith('teacher.module.backbone.') for k in state):
        MMLogger.get_current_instance().warning(
            f'{checkpoint} is a ConMIM pretraining checkpoint and prefix "backbone." loads its '
            'student. The official recipe fine-tunes the momentum teacher: set '
            'model.backbone.init_cfg.prefix=teacher.module.backbone. or extract it with '
            'tools/model_converters/extract_backbone.py.')
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        heads = sorted({k.split('.')[0] + '.' for k in state})
        teacher = sorted({k[:k.index('backbone.') + 9] for k in state if 'backbone.' in k})
        raise PretrainedMismatchError(
            f'No key of {checkpoint!r} starts with the prefix {prefix!r} '
            f'(model.backbone.init_cfg.prefix). Its keys start with {heads[:8]}'
            + (f'; backbone prefixes found: {teacher}' if teacher else '') + '. '
            + CONVERTER_HINT)
    return picked


def _adapt_tables(backbone, state: Dict[str, torch.Tensor]) -> List[str]:
    """Expand the shared table to per-layer tables and resize tables to the backbone's grid."""
    notes = []
    for key in [k for k in state if k.endswith('relative_position_index')]:
        del state[key]  # a deterministic function of the grid; the backbone has its own
    per_layer = backbone.rel_pos_bias is None and any(
        layer.attn.relative_position_bias_table is not None for layer in backbone.layers)
    if per_layer and SHARED_TABLE in state:
        shared = state.pop(SHARED_TABLE)
        for i in range(len(backbone.layers)):
            state.setdefault(f'layers.{i}.attn.relative_position_bias_table', shared.clone())
        notes.append('expanded the shared relative position table to every layer')
    own = backbone.state_dict()
    for key, table in list(state.items()):
        if not key.endswith('relative_position_bias_table') or key not in own:
            continue
        want = own[key].shape
        if table.shape == want or table.dim() != 2 or table.shape[1] != want[1]:
            continue  # same size, or a head mismatch reported with the other shape errors
        module = backbone.get_submodule(key.rsplit('.', 1)[0])
        dst = tuple(module.window_size)
        state[key] = resize_bias_table(table.float(), _window_of(table), dst).to(table.dtype)
        notes.append(f'resized {key} from {tuple(table.shape)} to {tuple(want)}')
    return notes


def load_pretrained_backbone(backbone, checkpoint: str, prefix: str = '',
                             map_location='cpu') -> None:
    """Load ``checkpoint`` (keys under ``prefix``) into ``backbone``; raise on any mismatch."""
    logger = MMLogger.get_current_instance()
    state = _read_state_dict(checkpoint, prefix, map_location)
    notes = _adapt_tables(backbone, state)
    own = backbone.state_dict()
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in state.items() if k in own and v.shape != own[k].shape]
    if mismatched:
        raise PretrainedMismatchError(
            f'{len(mismatched)} tensors of {checkpoint!r} (prefix {prefix!r}) have other shapes '
            f'than the backbone {type(backbone).__name__}; is `arch`/`patch_size` the one the '
            'checkpoint was trained with?\n  ' + '\n  '.join(mismatched[:20]))
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith('relative_position_index')
               and not k.startswith('ln2.')]
    unexpected = [k for k in unexpected
                  if not (k.startswith('ln1.') and not getattr(backbone, 'final_norm', True))
                  and k != 'mask_token']
    if missing or unexpected:
        hints = []
        if any('relative_position_bias_table' in k for k in missing + unexpected):
            hints.append('the relative position settings differ: a pretraining checkpoint has '
                         'one shared table (use_rel_pos_bias=True, use_shared_rel_pos_bias=False '
                         'expands it per layer); a fine-tuned one has per-layer tables')
        if any(k.startswith('layers.') for k in missing):
            hints.append('the checkpoint has fewer layers or another key layout')
        hints.append(CONVERTER_HINT)
        raise PretrainedMismatchError(
            f'{checkpoint!r} (prefix {prefix!r}) does not fit {type(backbone).__name__}: '
            f'{len(missing)} missing keys {missing[:30]}, {len(unexpected)} unexpected keys '
            f'{unexpected[:30]}. Hints: ' + '; '.join(hints))
    logger.info(f'Loaded {len(state)} tensors of {checkpoint} (prefix {prefix!r}) into '
                f'{type(backbone).__name__}' + (': ' + '; '.join(notes) if notes else ''))
