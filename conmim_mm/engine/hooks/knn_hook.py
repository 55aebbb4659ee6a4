"""A hook that monitors pretraining with the kNN top-1 of frozen backbone features
(the evaluation itself is in ``conmim_mm.evaluation``)."""
from typing import Optional

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from conmim_mm.evaluation import extract_features, knn_top1, make_encoder


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Log the kNN top-1 of frozen backbone features every ``interval`` epochs.

    The training images of ``bank_dataloader`` form the neighbour bank, the images of
    ``val_dataloader`` are classified by a weighted vote of their ``k`` nearest (cosine)
    neighbours. The accuracy goes to ``runner.visualizer`` (scalars.json, TensorBoard, ...)
    as ``knn/top1`` at the current iteration, to the log, and to the message hub
    (``runner.message_hub.get_info('knn_top1')``).

    Args:
        bank_dataloader (dict): A labelled dataloader config (e.g. the training set with a
            test-time pipeline and ``sampler=dict(type='DefaultSampler', shuffle=False)``).
        val_dataloader (dict): A labelled dataloader config of the evaluation images.
        interval (int): Evaluate every ``interval`` epochs (and after the last). Defaults to 1.
        k (int): Neighbours. Defaults to 20.
        vote_temperature (float): Vote weight ``exp(cos / vote_temperature)``. Defaults to
            0.07. (``temperature`` is the InfoNCE temperature of ``ConMIMHead``; this
            argument was called so before.)
        encoder (str): ``'student'`` (``model.extract_feat``) or ``'teacher'`` (the momentum
            teacher's backbone). Defaults to ``'student'``.
        pooling (str): ``'mean'`` of the patch tokens, ``'cls'`` or ``'cls+mean'``.
        before_train (bool): Also evaluate the initial weights. Defaults to False.
        prefix (str): Name prefix of the logged scalar. Defaults to ``'knn'``.
    """
    priority = 'LOW'

    def __init__(self,
                 bank_dataloader: dict,
                 val_dataloader: dict,
                 interval: int = 1,
                 k: int = 20,
                 vote_temperature: float = 0.07,
                 encoder: str = 'student',
                 pooling: str = 'mean',
                 before_train: bool = False,
                 prefix: str = 'knn',
                 **renamed) -> None:
        if 'temperature' in renamed:
            raise TypeError('KNNMonitorHook: `temperature` is now `vote_temperature` (the kNN '
                            'vote weight exp(cos / vote_temperature)); rename it in the config.')
        if renamed:
            raise TypeError(f'KNNMonitorHook got unexpected arguments {sorted(renamed)}.')
        if interval < 1 or k < 1:
            raise ValueError(f'interval and k must be >= 1, got {interval} and {k}.')
        if encoder not in ('student', 'teacher'):
            raise ValueError(f"encoder must be 'student' or 'teacher', got '{encoder}'.")
        if pooling not in ('mean', 'cls', 'cls+mean'):
            raise ValueError(f"pooling must be 'mean', 'cls' or 'cls+mean', got '{pooling}'.")
        self.bank_cfg, self.val_cfg = bank_dataloader, val_dataloader
        self.interval, self.k, self.vote_temperature = interval, k, vote_temperature
        self.encoder, self.pooling = encoder, pooling
        self.before_train_eval = before_train
        self.prefix = prefix
        self._loaders = None

    def _dataloaders(self, runner):
        if self._loaders is None:
            seed = runner.seed if hasattr(runner, 'seed') else None
            loaders = []
            for cfg in (self.bank_cfg, self.val_cfg):
                if isinstance(cfg, dict):
                    cfg = dict(cfg)
                    # one batched tensor per batch, in dataset order
                    cfg.setdefault('collate_fn', dict(type='default_collate'))
                    cfg.setdefault('sampler', dict(type='DefaultSampler', shuffle=False))
                    cfg = runner.build_dataloader(cfg, seed=seed)
                loaders.append(cfg)
            self._loaders = tuple(loaders)
        return self._loaders

    def evaluate(self, runner) -> Optional[float]:
        """kNN top-1 (%) of the current weights; None on ranks other than 0."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        was_training = model.training
        model.eval()
        try:
            encode = make_encoder(model, self.encoder, self.pooling)
            bank_loader, val_loader = self._dataloaders(runner)
            bank = extract_features(encode, bank_loader, model.data_preprocessor)
            query = extract_features(encode, val_loader, model.data_preprocessor)
        finally:
            model.train(was_training)
        if get_rank() != 0 or bank is None or query is None:
            return None
        return knn_top1(*bank, *query, k=self.k, vote_temperature=self.vote_temperature)

    def _log(self, runner, epoch: int) -> None:
        acc = self.evaluate(runner)
        if acc is None:
            return
        name = f'{self.prefix}/top1' if self.encoder == 'student' \
            else f'{self.prefix}/teacher_top1'
        runner.visualizer.add_scalars({name: acc, 'epoch': epoch}, step=runner.iter)
        runner.message_hub.update_info(name.replace('/', '_'), acc)
        runner.logger.info(f'Epoch {epoch}: kNN (k={self.k}, {self.encoder}, '
                           f'{self.pooling} pooling) top-1 = {acc:.2f}%')

    def before_train(self, runner) -> None:
        if self.before_train_eval:
            self._log(runner, runner.epoch)

    def after_train_epoch(self, runner) -> None:
        if self.every_n_epochs(runner, self.interval) or self.is_last_train_epoch(runner):
            self._log(runner, runner.epoch + 1)
