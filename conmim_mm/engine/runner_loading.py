"""How the tools' Runner loads ``load_from`` and ``resume`` checkpoints: strictly.

* ``Runner.load_or_resume`` calls ``Runner.load_checkpoint(filename)`` with mmengine's default
  ``strict=False``: a checkpoint that does not fit the model (a backbone-only extract, a raw
  pretraining checkpoint, another depth) only logs the missing keys, and evaluation then runs on
  random weights. Here the load is strict, and mmengine's error becomes one that lists what did
  not fit and what to do.

Config text stored in a checkpoint is never executed on any path (every Runner, every
inferencer): the package's checkpoint loaders make it inert (``stored_config.py``).
"""
import re

from mmengine.runner import Runner

SHOWN = 8  # keys listed per kind


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's weights do not fit the model built from the config."""


def _keys_after(label: str, text: str):
    found = re.search(rf'{label}: (.*)', text)
    return [k for k in found.group(1).split(', ') if k] if found else []


def mismatch_message(filename: str, error_text: str) -> str:
    missing = _keys_after('missing keys in source state_dict', error_text)
    unexpected = _keys_after('unexpected key in source state_dict', error_text)
    shapes = re.findall(r'size mismatch for (\S+?):', error_text)
    lines = [f'The checkpoint {filename} does not fit the model of this config '
             f'({len(missing)} missing, {len(unexpected)} unexpected, {len(shapes)} mismatched '
             'keys), so its weights were not loaded:']
    for kind, keys in (('missing', missing), ('unexpected', unexpected),
                       ('shape mismatch', shapes)):
        if keys:
            more = f' ... (+{len(keys) - SHOWN})' if len(keys) > SHOWN else ''
            lines.append(f'  {kind}: {", ".join(keys[:SHOWN])}{more}')
    if not (missing or unexpected or shapes):
        lines.append(error_text.strip())
    if any(k.startswith('teacher.') for k in unexpected):
        lines.append('It looks like a ConMIM pretraining checkpoint.')
    elif missing and all(not k.startswith('backbone.') for k in missing):
        lines.append('It looks like a backbone-only file (tools/model_converters/'
                     'extract_backbone.py output).')
    lines.append('tools/test.py, load_from and --resume take a whole model of this config (a '
                 'tools/train.py checkpoint of it, or tools/model_converters/beit_to_conmim.py '
                 'output); a pretrained backbone is fine-tuned first, with --cfg-options '
                 'model.backbone.init_cfg.checkpoint=FILE. To load only what fits, pass '
                 '--non-strict.')
    return '\n'.join(lines)


def guard_checkpoint_loading(runner: Runner, strict: bool = True) -> Runner:
    """Make ``runner``'s ``load_from``/``resume`` loads strict (unless ``strict=False``)."""
    load_checkpoint = runner.load_checkpoint

    def guarded_load_checkpoint(filename, map_location='cpu', strict=strict, **kwargs):
        try:
            checkpoint = load_checkpoint(filename, map_location=map_location, strict=strict,
                                         **kwargs)
        except RuntimeError as err:
            if 'do not match exactly' not in str(err):
                raise
            raise CheckpointMismatchError(mismatch_message(filename, str(err))) from None
        return checkpoint

    runner.load_checkpoint = guarded_load_checkpoint
    return runner
