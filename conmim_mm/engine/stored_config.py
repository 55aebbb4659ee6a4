"""Config text stored in a checkpoint is data, never code.

mmengine writes the training config into its checkpoints as Python text (``meta['cfg']``; some
versions keep it in the message hub, ``runtime_info['cfg']``; mmcv 1.x wrote ``meta['config']``)
and several readers execute it with ``Config.fromstring``: mmengine's ``BaseInferencer`` (so
mmdet's ``DetInferencer`` and mmseg's ``MMSegInferencer``) when no config is given, and
``Runner.resume`` / ``FlexibleRunner.resume`` (mmpretrain's ``tools/train.py`` included) for a
GPU-count check. A checkpoint that passes the weights-only unpickler can still carry such text.

So every checkpoint the package's loaders return (all of mmengine's schemes, see
``checkpoint_loaders.py``) is cleaned here, once for every path:

* ``meta['cfg']`` becomes :class:`StoredConfigText`, which is not a ``str``;
  ``Config.fromstring`` refuses it with a message saying to pass the config file.
* ``message_hub.runtime_info['cfg']`` leaves the message hub (a resumed run keeps its own config
  there, and never saves an object that could not be loaded weights-only); when ``meta`` has no
  config text, it takes its place there, inert.
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
        # Out of the message hub, which a resumed run would save again (the run's own
        # RuntimeInfoHook sets its config there); kept inert where the inferencers look next.
        text = info.pop('cfg')
        meta = checkpoint.setdefault('meta', {}) if meta is None else meta
        if isinstance(meta, dict) and not isinstance(meta.get('cfg'), StoredConfigText):
            meta['cfg'] = StoredConfigText(text, source, "message_hub.runtime_info['cfg']")
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
