"""Automatic resume that survives a broken ``last_checkpoint``.

mmengine's auto-resume (``resume=True`` without ``load_from``, ``--resume`` without a path)
loads the file named in ``<work_dir>/last_checkpoint``; when that file is empty, truncated or
gone (deleted by hand, a disk that lost it, a copy cut short), the run ends in a traceback. Here
the newest checkpoint that is whole is resumed instead, with a warning naming both; with none,
the error says what is wrong and what to do.
"""
import glob
import os.path as osp

from ..checkpoint_loaders import damage


class NoCheckpointToResumeError(RuntimeError):
    """``last_checkpoint`` names no readable checkpoint and no other one is whole."""


def last_checkpoint_problem(named: str):
    """Why the path written in ``last_checkpoint`` cannot be resumed, or None."""
    if not named:
        return 'last_checkpoint is empty'
    if '://' in named:
        return None  # another storage backend: left to mmengine
    if not osp.isfile(named):
        return f'the checkpoint it names, {named}, does not exist'
    reason = damage(named)
    return f'the checkpoint it names, {named}, cannot be loaded: {reason}' if reason else None


def newest_whole_checkpoint(folders):
    """The most recently written ``*.pth`` in ``folders`` that is whole, or None."""
    paths = {p for folder in folders for p in glob.glob(osp.join(glob.escape(folder), '*.pth'))}
    for path in sorted(paths, key=lambda p: (osp.getmtime(p), p), reverse=True):
        if damage(path) is None:
            return path
    return None


def checkpoint_to_resume(work_dir: str, logger):
    """The checkpoint auto-resume should load: None when ``last_checkpoint`` is absent (a new
    run) or names a whole checkpoint (mmengine's choice stands), else the newest whole one."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        named = f.read().strip()
    problem = last_checkpoint_problem(named)
    if problem is None:
        return None
    folders = [work_dir] + ([osp.dirname(named)] if named and '://' not in named else [])
    fallback = newest_whole_checkpoint(folders)
    if fallback is None:
        raise NoCheckpointToResumeError(
            f'Cannot resume automatically from {work_dir}: {problem} ({record}), and no other '
            f'whole checkpoint (*.pth) is in {" or ".join(sorted(set(folders)))}. Pass '
            '--resume PATH (resume=True, load_from=PATH) with a checkpoint, or delete '
            f'{record} to start the run from scratch.')
    logger.warning(f'Auto-resume: {problem} ({record}); resuming from {fallback}, the newest '
                   'whole checkpoint, instead.')
    return fallback
