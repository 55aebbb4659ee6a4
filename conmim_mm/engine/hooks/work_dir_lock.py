"""One run per work dir: a lock file naming its owner, with stale locks detected.

Two runs started in the same work dir would overwrite each other's checkpoints and
``last_checkpoint``. The first run writes ``<work_dir>/.run.lock`` (host, pid, Slurm job,
start time) with ``O_EXCL`` and refreshes its time stamp from a background thread; the second
finds it and is refused with the owner's host and pid. A lock is stale, and taken over with a
warning, when its owner is gone: on the same host its pid no longer runs; it was left by an
earlier start of the same Slurm job (requeued: ``SLURM_RESTART_COUNT`` differs); on another host its
time stamp has not been refreshed for ``stale_after`` seconds.
Only the main process takes the lock. The lock is removed when the run
ends, however it ends short of ``SIGKILL``.
"""
import atexit
import json
import os
import os.path as osp
import socket
import threading
import time

LOCK_NAME = '.run.lock'


class WorkDirLockedError(RuntimeError):
    """Another run is using this work dir."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class WorkDirLock:
    """``acquire()`` or raise :class:`WorkDirLockedError`; ``release()`` (also at exit)."""

    def __init__(self, work_dir: str, heartbeat: float = 60., stale_after: float = 600.):
        self.path = osp.join(work_dir, LOCK_NAME)
        self.heartbeat, self.stale_after = heartbeat, stale_after
        self.owner = dict(host=socket.gethostname(), pid=os.getpid(),
                          slurm_job=os.environ.get('SLURM_JOB_ID'),
                          slurm_restart=os.environ.get('SLURM_RESTART_COUNT', '0'),
                          started=time.time())
        self.taken_over = None  # (the stale owner, why it was stale)
        self._stop = threading.Event()
        self._held = False

    def read_owner(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None  # removed meanwhile, or written half-way by a killed run

    def stale_reason(self, owner):
        """Why the lock of ``owner`` is stale, or None while its run may be alive."""
        if not isinstance(owner, dict):
            return 'its owner record cannot be read'
        host, pid = owner.get('host'), owner.get('pid')
        if host == self.owner['host'] and pid == self.owner['pid']:
            return 'it was left by this process'
        if host == self.owner['host'] and isinstance(pid, int) and not _alive(pid):
            return f'process {pid} no longer runs'
        if owner.get('slurm_job') and owner.get('slurm_job') == self.owner['slurm_job'] \
                and owner.get('slurm_restart') != self.owner['slurm_restart']:
            return f"it belongs to an earlier start of the requeued Slurm job {owner['slurm_job']}"
        try:
            age = time.time() - osp.getmtime(self.path)
        except OSError:
            return 'it was removed'
        if host != self.owner['host'] and age > self.stale_after:
            return f'it was last refreshed {age:.0f} s ago'
        return None

    def acquire(self) -> None:
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.read_owner()
                reason = self.stale_reason(owner)
                if reason is None:
                    raise WorkDirLockedError(self.refusal(owner)) from None
                self.taken_over = (owner, reason)
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, 'w') as f:
                json.dump(self.owner, f)
            self._held = True
            atexit.register(self.release)
            threading.Thread(target=self._refresh, daemon=True, name='work-dir-lock').start()
            return
        raise WorkDirLockedError(f'Could not take the lock {self.path}: other runs keep '
                                 'creating it.')

    def refusal(self, owner) -> str:
        since = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(owner.get('started', 0)))
        job = f", Slurm job {owner['slurm_job']}" if owner.get('slurm_job') else ''
        return (f"Another run uses the work dir {osp.dirname(self.path)}: host "
                f"{owner.get('host')}, pid {owner.get('pid')}{job}, started {since} (lock "
                f'{self.path}). Two runs in one work dir overwrite each other\'s checkpoints. '
                'Give this run its own --work-dir, or stop the other run; if it is dead on '
                'another host, delete the lock file (it is also taken over once it has not been '
                f'refreshed for {self.stale_after:.0f} s).')

    def _refresh(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        self._stop.set()
        owner = self.read_owner()
        if isinstance(owner, dict) and owner.get('pid') == self.owner['pid'] \
                and owner.get('host') == self.owner['host']:
            try:
                os.remove(self.path)
            except OSError:
                pass
