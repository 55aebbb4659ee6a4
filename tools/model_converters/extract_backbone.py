"""Turn a ConMIM pretraining checkpoint into a backbone-only file for the downstream configs.

    python tools/model_converters/extract_backbone.py work_dirs/conmim_vit-b/epoch_800.pth \
        conmim_vit-b_teacher.pth [--student]

The pretraining checkpoint holds the student (``backbone.``) and its momentum teacher
(``teacher.module.backbone.``). The official recipe fine-tunes the teacher, so that is the default;
``--student`` takes the student instead. The output is ``{'state_dict': {'backbone.<key>': ...},
'meta': {...}}``, which every config in configs/cls, configs/seg and configs/det loads with
``--cfg-options model.backbone.init_cfg.checkpoint=OUT``.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from conmim_mm.engine import CheckpointLoadError  # noqa: E402  (weights-only loaders)
from conmim_mm.models.utils.pretrained import NoStateDictError, read_state_dict  # noqa: E402

PREFIXES = {'teacher': 'teacher.module.backbone.', 'student': 'backbone.'}


def extract(state_dict: dict, branch: str = 'teacher') -> dict:
    """``backbone.``-prefixed tensors of the chosen branch of a pretraining state dict."""
    prefix = PREFIXES[branch]
    out = {'backbone.' + k[len(prefix):]: v.clone() for k, v in state_dict.items()
           if k.startswith(prefix)}
    if not out:
        found = sorted({k.split('.')[0] for k in state_dict})
        hint = ''
        if branch == 'teacher' and any(k.startswith('backbone.') for k in state_dict):
            hint = (' The file has a student backbone but no teacher: it is not a ConMIM '
                    'pretraining checkpoint (or was already extracted); pass --student to take '
                    'the student.')
        raise KeyError(f'No {branch} backbone (keys starting with {prefix!r}) in the checkpoint; '
                       f'its top-level key groups are {found}.{hint}')
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='ConMIM pretraining checkpoint (mmengine, with state_dict): '
                        'a path or a URL')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--student', action='store_true',
                        help='take the student instead of the momentum teacher')
    args = parser.parse_args(argv)
    try:  # local files and URLs, weights-only (see conmim_mm/engine/checkpoint_loaders.py)
        state, ckpt = read_state_dict(args.src, logger='silent')
    except (FileNotFoundError, CheckpointLoadError, NoStateDictError) as err:
        sys.exit(f'error: {err}')
    branch = 'student' if args.student else 'teacher'
    try:
        out = extract(state, branch)
    except KeyError as err:
        sys.exit(f'error: {err.args[0]}')
    meta = dict(source=osp.abspath(args.src), branch=branch)
    if 'teacher.steps' in state:
        meta['teacher_ema_steps'] = int(state['teacher.steps'])
    for key in ('epoch', 'iter'):
        if isinstance(ckpt.get('meta'), dict) and key in ckpt['meta']:
            meta[key] = ckpt['meta'][key]
    torch.save({'state_dict': out, 'meta': meta}, args.dst)
    print(f'wrote {len(out)} {branch} backbone tensors to {args.dst}')


if __name__ == '__main__':
    main()
