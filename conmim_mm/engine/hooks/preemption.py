"""Slurm's preemption signals, noted and agreed on by every rank.

Slurm warns a job before it ends: ``SIGTERM`` on preemption or ``scancel``, then ``SIGKILL``
after the grace time; ``--signal=USR1@120`` sends ``SIGUSR1`` 120 s before the time limit. The
handler only notes the signal; the training loop acts on it between iterations, once every rank
knows (a one-element ``all_reduce`` per iteration when distributed, read one iteration later so
that the step never waits for it), so all ranks save the same iteration and exit together.
"""
import signal
import threading

import torch
from mmengine.dist import all_reduce, get_world_size

from .divergence_guard_hook import start_host_copy

PREEMPTION_SIGNALS = ('SIGTERM', 'SIGUSR1')
# sysexits' EX_TEMPFAIL ("try again later"): the status of a run stopped by preemption after
# saving its checkpoint. tools/slurm_train.sh requeues the job on it; clusters can also list it
# in slurm.conf's RequeueExit.
EXIT_PREEMPTED = 75


class PreemptionSignals:
    """Note ``signals`` (names) while installed; ``agreed(device)`` says when to stop."""

    def __init__(self, signals=PREEMPTION_SIGNALS) -> None:
        self.signals = [getattr(signal, name) for name in signals]
        self.received = None  # name of the first signal received
        self._previous = {}
        self._pending = []

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._note)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        self._pending.clear()

    def _note(self, signum, frame) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name

    def agreed(self, device) -> bool:
        """Whether every rank has now seen a signal on some rank (call once per iteration on
        every rank)."""
        if get_world_size() == 1:
            return self.received is not None
        # filled on the device from a Python number: no host-to-device copy, no wait
        flag = torch.full((1, ), float(self.received is not None), device=device)
        all_reduce(flag, op='max')
        self._pending.append(start_host_copy(flag))
        if len(self._pending) < 2 and self._pending[0][1] is not None:
            return False  # on CUDA: read next iteration, without waiting for this step
        host, event = self._pending.pop(0)
        if event is not None:
            event.synchronize()
        return bool(host.item())
