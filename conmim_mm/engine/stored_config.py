"""Config text stored in a checkpoint is data, never code.

mmengine writes the training config into its checkpoints as Python text (``meta['cfg']``; some
versions keep it in the message hub, ``runtime_info['cfg']``; mmcv 1.x wrote ``meta['config']``)
and several readers execute it with ``Config.fromstring``: mmengine's ``BaseInferencer`` (so
mmdet's ``DetInferencer`` and mmseg's ``MMSegInferencer``) when no config is given, and
``Runner.resume`` / ``FlexibleRunner.resume`` (mmpretrain's ``tools/train.py`` included) for a
GPU-count check. A checkpoint that passes the weights-only unpickler can still carry such text.

So every checkpoint the package's loaders return (all of mmengine's schemes, see
``checkpoint_loaders.py``) is cleaned here, once for every path:

* ``meta['cfg']`` and ``runtime_info['cfg']`` become :class:`StoredConfigText`, which is not a
  ``str``; ``Config.fromstring`` refuses it with a message saying to pass the config file. The
  message hub is told not to save it again.
* ``meta['config']`` is dropped with a warning: it is read only for mmcv 1.x's ``gpu_ids`` check
  during a resume, which then goes on.
"""
from mmengine.config import Config
from mmengine.logging import print_log


class StoredConfigTextError(RuntimeError):
    """Something tried to execute config text read from a checkpoint."""


class StoredConfigText:
    """Config text read from a checkpoint, kept as inert data (``.text``); never executed."""

    def __init__(self, text, source: str, key: str) -> None:
        self.text, self.source, self.key = text, source, key

    def __repr__(self) -> str:
        return (f'<config text stored in {self.source} ({self.key}), {len(str(self.text))} '
                'characters, never executed>')

    def refusal(self) -> str:
        return (f'Refused to run the config text stored in the checkpoint {self.source} '
                f'({self.key}): a config is Python, and text from a checkpoint is never '
                'executed, since any file could carry code there. Pass the config file '
                'instead: --config CONFIG for the tools, model=CONFIG (with weights=CHECKPOINT) '
                'for the mmdet / mmseg / mmpretrain inferencers.')


def make_config_text_inert(checkpoint, source: str):
    """Clean ``checkpoint`` (as loaded) in place as described above; returns it."""
    if not isinstance(checkpoint, dict):
        return checkpoint
    meta = checkpoint.get('meta')
    if isinstance(meta, dict):
        if 'config' in meta:
            meta.pop('config')
            print_log(f'Ignored the config text stored in {source} (meta.config): text from a '
                      'checkpoint is never executed.', logger='current', level=30)
        if isinstance(meta.get('cfg'), str):
            meta['cfg'] = StoredConfigText(meta['cfg'], source, "meta['cfg']")
    hub = checkpoint.get('message_hub')
    info = hub.get('runtime_info') if isinstance(hub, dict) else None
    if isinstance(info, dict) and isinstance(info.get('cfg'), str):
        info['cfg'] = StoredConfigText(info['cfg'], source, "message_hub.runtime_info['cfg']")
        if isinstance(hub.get('resumed_keys'), dict):
            hub['resumed_keys']['cfg'] = False  # a resumed run never writes it back
    return checkpoint


def refuse_stored_config_text() -> None:
    """Make ``Config.fromstring`` refuse :class:`StoredConfigText` (plain text still works)."""
    fromstring = Config.fromstring
    if getattr(fromstring, 'refuses_stored_config_text', False):
        return

    def guarded_fromstring(cfg_str, file_format):
        if isinstance(cfg_str, StoredConfigText):
            raise StoredConfigTextError(cfg_str.refusal())
        return fromstring(cfg_str, file_format)

    guarded_fromstring.refuses_stored_config_text = True
    guarded_fromstring.__doc__ = fromstring.__doc__
    Config.fromstring = staticmethod(guarded_fromstring)
