"""Per-epoch seeding, so that a resumed run draws the same crops and masks."""
from functools import partial

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner import set_random_seed
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Re-seed the data randomness at the start of every epoch from (seed, epoch).

    mmengine seeds once, when the Runner starts. A run resumed at epoch e therefore draws the
    augmentations and masks of epoch 0 again, unlike the run it continues. With this hook the
    main process and the dataloader workers of epoch e are seeded from ``seed + e`` whether
    the run was interrupted or not, so losses after a resume equal those of an uninterrupted
    run. Use non-persistent workers (``persistent_workers=False``): persistent workers are
    seeded only once.
    """
    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        seed = (runner.seed or 0) + 1000 * runner.epoch
        set_random_seed(seed + get_rank())
        loader = runner.train_dataloader
        init_fn = getattr(loader, 'worker_init_fn', None)
        if isinstance(init_fn, partial) and 'seed' in init_fn.keywords:
            loader.worker_init_fn = partial(init_fn.func, *init_fn.args,
                                            **{**init_fn.keywords, 'seed': seed})
