"""mmengine's ``CheckpointHook`` with crash-safe writes: a kill or a full disk during a save
never costs the last checkpoint."""
import contextlib
import glob
import os
import os.path as osp
from collections import deque
from functools import partial

from mmengine.dist import barrier, broadcast_object_list, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from .auto_resume import checkpoint_to_resume
from .mid_epoch_resume import (can_skip_batches, epoch_progress, gather_rng_states,
                               plan_resume, resume_mid_epoch)
from .optimizer_step_scheduler_hook import optimizer_stepped
from .preemption import EXIT_PREEMPTED, PREEMPTION_SIGNALS, PreemptionSignals
from .work_dir_lock import WorkDirLock, WorkDirLockedError

PARTIAL_SUFFIX = '.part'
PREEMPTION_CHECKPOINT = 'preemption_checkpoint'  # message hub key: the file saved on a signal


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str, text: str) -> None:
    """Replace ``path`` by a file holding ``text``; readers see the old or the new file."""
    part_path = path + PARTIAL_SUFFIX
    try:
        with open(part_path, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(part_path)
        raise


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments and behaviour) whose saves survive kills and full disks.

    mmengine's hook deletes the oldest checkpoint *before* writing the new one and writes the
    file in place: with ``max_keep_ckpts=1``, a kill or ``ENOSPC`` during the save leaves
    ``last_checkpoint`` naming a deleted file (or a truncated one) and the run cannot resume.
    Here each checkpoint is written to ``<name>.part`` in the same directory, flushed to disk
    and renamed into place (``os.replace``: atomic on POSIX); only then is ``last_checkpoint``
    replaced (atomically as well) and are checkpoints beyond ``max_keep_ckpts`` removed. A save
    that fails removes its partial file and re-raises; a save killed outright leaves a
    ``.part`` file that the next start removes. ``save_best`` checkpoints are written the same
    way. Other storage backends (``backend_args``) fall back to mmengine's behaviour.

    Iteration-interval checkpoints (``by_epoch=False``) under mmengine's ``EpochBasedTrainLoop``
    resume exactly: they store every rank's random generator states, and the resumed epoch
    skips the batches trained before the save (see ``mid_epoch_resume.py``) instead of training
    the whole epoch again. Under an epoch loop with its own ``run_epoch`` they are refused at
    start-up. Every checkpoint stores what the current epoch has consumed (``epoch_progress``),
    so a run resumed with another batch size, process count or dataset goes on at the same
    sample position or at the next epoch boundary, never one epoch off.

    Around the run, the hook also:

    * keeps one run per work dir (``work_dir_lock.py``): a second run is refused with the
      owner's host and pid, a stale lock is taken over with a warning;
    * auto-resumes from the newest whole checkpoint when ``last_checkpoint`` names an empty,
      truncated or missing file (``auto_resume.py``), with a warning naming both;
    * on ``SIGTERM`` / ``SIGUSR1`` (``preemption_signals``; Slurm's preemption and
      ``--signal=USR1@120``) finishes the current iteration, writes an exact mid-epoch
      checkpoint ``iter_<n>.pth`` the same crash-safe way, logs it and exits with status 75
      (``EXIT_PREEMPTED``), on which ``tools/slurm_train.sh`` requeues the job.

    Args:
        preemption_signals (sequence of str): Signal names that save and stop the run; ``()``
            leaves signals alone. Defaults to ``('SIGTERM', 'SIGUSR1')``.
        lock_work_dir (bool): Refuse a second run in the same work dir. Defaults to True.
        **kwargs: ``CheckpointHook``'s arguments.
    """

    _runner_save = None  # runner.save_checkpoint while _save_best_checkpoint redirects it
    _rng_states = None  # every rank's random generators, for a checkpoint saved mid-epoch
    _resumed_rng_states = None
    _resumed_progress = None
    _batches_done = 0  # batches of the current epoch trained so far, by this run's loader

    def __init__(self, *args, preemption_signals=PREEMPTION_SIGNALS, lock_work_dir=True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.preemption = PreemptionSignals(preemption_signals) if preemption_signals else None
        self.lock_work_dir = lock_work_dir
        self.lock = None

    def before_run(self, runner) -> None:
        super().before_run(runner)
        if runner._resume and runner._load_from is None:
            runner._load_from = checkpoint_to_resume(runner.work_dir, runner.logger)

    def _lock(self, runner) -> None:
        """Training only: evaluating in the same work dir while a run trains is fine."""
        refusal = None
        if is_main_process():
            self.lock = WorkDirLock(runner.work_dir)
            try:
                self.lock.acquire()
            except WorkDirLockedError as err:
                refusal = str(err)
            if self.lock.taken_over:
                owner, reason = self.lock.taken_over
                runner.logger.warning(f'Took over the lock {self.lock.path} of a run that is '
                                      f'gone ({reason}; it was {owner}).')
        decision = [refusal]
        broadcast_object_list(decision)
        if decision[0] is not None:
            raise WorkDirLockedError(decision[0])

    def after_run(self, runner) -> None:
        self.release()

    def release(self) -> None:
        """Give back the work dir and the signal handlers: at the end of the run, on
        preemption, and (at exit) when the process ends in an error."""
        if self.preemption is not None:
            self.preemption.restore()
        if self.lock is not None:
            self.lock.release()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed_rng_states = checkpoint.get('rng_states')
        self._resumed_progress = checkpoint.get('epoch_progress')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._rng_states is not None:
            checkpoint['rng_states'] = self._rng_states
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            # an epoch checkpoint's meta names the next epoch, of which nothing is trained yet
            epoch = checkpoint['meta'].get('epoch', runner.epoch)
            batches = 0 if epoch > runner.epoch else self._batches_done
            checkpoint['epoch_progress'] = epoch_progress(loop, epoch, batches)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._batches_done = batch_idx + 1
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        # under gradient accumulation, only after an optimiser step: a checkpoint in the middle
        # of one would lose the gradients of its first micro-batches (the same iteration on
        # every rank, so the ranks still agree together)
        if self.preemption is not None and optimizer_stepped(runner.optim_wrapper) \
                and self.preemption.agreed(self._device(runner)):
            self._save_and_exit(runner)

    def after_train_epoch(self, runner) -> None:
        super().after_train_epoch(runner)
        self._batches_done = 0

    @staticmethod
    def _device(runner):
        param = next(runner.model.parameters(), None)
        return param.device if param is not None else 'cpu'

    def _save_and_exit(self, runner) -> None:
        """Save an exact checkpoint of the iteration just finished, then stop the run."""
        step = runner.iter + 1
        filename = f'iter_{step}.pth'
        if self.last_ckpt is None or osp.basename(self.last_ckpt) != filename:
            # stored in the checkpoint's message hub: the resumed run removes the file once a
            # regular checkpoint is written after it
            runner.message_hub.update_info(PREEMPTION_CHECKPOINT, filename)
            self._rng_states = gather_rng_states()
            save = self._atomic_save if self._atomic() else \
                (lambda runner, *args, **kwargs: runner.save_checkpoint(*args, **kwargs))
            try:
                save(runner, self.out_dir, filename, self.file_client_args,
                     save_optimizer=self.save_optimizer,
                     save_param_scheduler=self.save_param_scheduler,
                     meta=dict(epoch=runner.epoch, iter=step), by_epoch=False,
                     backend_args=self.backend_args, **self.args)
            finally:
                self._rng_states = None
            self.last_ckpt = osp.join(self.out_dir, filename)
            if is_main_process() and self._atomic():
                write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        barrier()  # no rank exits (srun --kill-on-bad-exit) before the file is whole
        signal_name = self.preemption.received or 'a preemption signal (on another rank)'
        loop = runner.train_loop
        where = f'epoch {runner.epoch + 1}, batch {self._batches_done} of ' \
            f'{len(loop.dataloader)}' if isinstance(loop, EpochBasedTrainLoop) else 'iteration'
        runner.logger.warning(
            f'Received {signal_name}: saved {self.last_ckpt} after iteration {step} ({where}); '
            f'stopping with exit status {EXIT_PREEMPTED} so that the job can be requeued. '
            'Resuming (resume=True / --resume) continues exactly from this checkpoint.')
        self.release()
        raise SystemExit(EXIT_PREEMPTED)

    def _save_checkpoint(self, runner) -> None:
        # Iteration checkpoints may fall in the middle of an epoch: keep the generator states
        # of all ranks (gathered here, on every rank) so that a resume continues exactly.
        self._rng_states = None if self.by_epoch else gather_rng_states()
        try:
            super()._save_checkpoint(runner)
        finally:
            self._rng_states = None

    def _atomic(self) -> bool:
        return isinstance(getattr(self, 'file_backend', None), LocalBackend) \
            and self.file_client_args is None

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        custom_epoch_loop = isinstance(loop, EpochBasedTrainLoop) and not can_skip_batches(loop)
        if custom_epoch_loop and (not self.by_epoch or (plan_resume(
                loop, self._resumed_progress, self._resumed_rng_states)[0] or 0) > 0):
            raise ValueError(
                f'{type(loop).__name__} has its own run_epoch, so a checkpoint saved in the '
                'middle of an epoch (default_hooks.checkpoint.by_epoch=False) cannot be '
                'resumed exactly: the interrupted epoch would be trained again from its first '
                'batch. Save by epoch (default_hooks.checkpoint.by_epoch=True), use mmengine\'s '
                "EpochBasedTrainLoop, or train with train_cfg=dict(type='IterBasedTrainLoop', "
                'max_iters=...).')
        if self.lock_work_dir:
            self._lock(runner)
        if isinstance(loop, EpochBasedTrainLoop):
            resume_mid_epoch(runner, self._resumed_rng_states, self._resumed_progress)
        self._resumed_rng_states = self._resumed_progress = None
        super().before_train(runner)
        if self.preemption is not None and custom_epoch_loop:
            runner.logger.warning(f'{type(loop).__name__} has its own run_epoch: a checkpoint '
                                  'saved on preemption could not be resumed exactly, so '
                                  'preemption signals are left to their default action.')
            self.preemption = None
        if self.preemption is not None:
            self.preemption.install()
        if self._atomic() and is_main_process():
            for part_path in glob.glob(osp.join(glob.escape(self.out_dir), '*' + PARTIAL_SUFFIX)):
                runner.logger.warning(f'Removing {part_path}, a checkpoint whose save was '
                                      'interrupted.')
                with contextlib.suppress(OSError):
                    os.remove(part_path)

    def _atomic_save(self, runner, out_dir: str, filename: str, *args, **kwargs) -> None:
        """``runner.save_checkpoint`` to ``filename.part``, renamed to ``filename`` once whole."""
        final = osp.join(out_dir, filename)
        part_path = final + PARTIAL_SUFFIX
        save = self._runner_save or runner.save_checkpoint
        try:
            save(out_dir, filename + PARTIAL_SUFFIX, *args, **kwargs)
            if is_main_process():  # Runner.save_checkpoint writes on the main process only
                _fsync(part_path)
                os.replace(part_path, final)
                _fsync(out_dir)
        except BaseException as err:
            if is_main_process():
                with contextlib.suppress(OSError):
                    os.remove(part_path)
                if isinstance(err, OSError):
                    runner.logger.error(
                        f'Saving the checkpoint {final} failed ({err}); no partial file is left '
                        'and the previous checkpoints are kept. Free disk space (or set '
                        'default_hooks.checkpoint.out_dir) and resume with --resume.')
            raise

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._atomic():
            return super()._save_checkpoint_with_step(runner, step, meta)
        kept_before, last_before = list(getattr(self, 'keep_ckpt_ids', ())), self.last_ckpt
        # The same bookkeeping as mmengine (the checkpoint stores the ids kept after this save),
        # but the outdated checkpoint is removed only after the new one is in place.
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        try:
            self._atomic_save(runner, self.out_dir, ckpt_filename, self.file_client_args,
                              save_optimizer=self.save_optimizer,
                              save_param_scheduler=self.save_param_scheduler, meta=meta,
                              by_epoch=self.by_epoch, backend_args=self.backend_args,
                              **self.args)
        except BaseException:  # the checkpoints on disk are those before this save
            self.last_ckpt = last_before
            if last_before is not None:
                runner.message_hub.update_info('last_ckpt', last_before)
            if self.max_keep_ckpts > 0:
                self.keep_ckpt_ids = deque(kept_before, self.max_keep_ckpts)
                runner.message_hub.update_info('keep_ckpt_ids', kept_before)
            raise
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        preempted = runner.message_hub.get_info(PREEMPTION_CHECKPOINT)
        outdated = [osp.join(self.out_dir, self.filename_tmpl.format(old_step))
                    for old_step in outdated] + ([osp.join(self.out_dir, preempted)]
                                                 if preempted else [])
        for path in outdated:
            if path != self.last_ckpt and osp.isfile(path):
                os.remove(path)
        runner.message_hub.update_info(PREEMPTION_CHECKPOINT, None)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self._atomic() or not self.save_best:
            return super()._save_best_checkpoint(runner, metrics)
        # mmengine's best-checkpoint logic unchanged; its writes go through _atomic_save.
        self._runner_save = runner.save_checkpoint
        runner.save_checkpoint = partial(self._atomic_save, runner)
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            del runner.save_checkpoint  # back to the class method
            self._runner_save = None
