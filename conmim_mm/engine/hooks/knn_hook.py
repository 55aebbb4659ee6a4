"""kNN top-1 on frozen backbone features, as a hook that monitors pretraining.

The functions (``extract_features``, ``knn_top1``) are also used by the offline evaluation
tool ``tools/benchmarks/fashion_mnist.py``.
"""
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.dist import collect_results, get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


def pool_tokens(feats: torch.Tensor, pooling: str = 'mean', num_extra_tokens: int = 1
                ) -> torch.Tensor:
    """One vector per image from a backbone output.

    ``feats`` is (B, D) (already pooled), (B, D, h, w) (a feature map: averaged) or
    (B, N, D) tokens whose first ``num_extra_tokens`` are [CLS]-like; ``pooling`` picks
    ``'cls'`` (the first token), ``'mean'`` (the mean of the patch tokens) or ``'cls+mean'``
    (both, concatenated).
    """
    if feats.dim() == 2:
        return feats
    if feats.dim() == 4:
        return feats.mean(dim=(2, 3))
    if feats.dim() != 3:
        raise ValueError(f'Cannot pool backbone features of shape {tuple(feats.shape)}.')
    patches = feats[:, num_extra_tokens:]
    if pooling == 'mean':
        return patches.mean(dim=1)
    if num_extra_tokens < 1:
        raise ValueError(f"pooling='{pooling}' needs a [CLS] token; use pooling='mean'.")
    if pooling == 'cls':
        return feats[:, 0]
    if pooling == 'cls+mean':
        return torch.cat([feats[:, 0], patches.mean(dim=1)], dim=1)
    raise ValueError(f"pooling must be 'cls', 'mean' or 'cls+mean', got '{pooling}'.")


def _labels(data_samples) -> torch.Tensor:
    return torch.cat([s.gt_label.reshape(-1)[:1] for s in data_samples]).long()


@torch.no_grad()
def extract_features(encode: Callable[[torch.Tensor], torch.Tensor], dataloader,
                     data_preprocessor: Callable) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Features (N, D) in float32 on the CPU and labels (N,) of a labelled dataloader.

    ``encode`` maps a preprocessed batch to (B, D) features. In distributed runs each rank
    encodes its shard and rank 0 gets everything (in dataset order); other ranks get None.
    """
    rows = []
    for data in dataloader:
        data = data_preprocessor(data, False)
        feats = encode(data['inputs']).float().cpu()
        rows.extend(zip(feats, _labels(data['data_samples']).tolist()))
    rows = collect_results(rows, len(dataloader.dataset), device='cpu')
    if rows is None:
        return None
    return torch.stack([f for f, _ in rows]), torch.tensor([y for _, y in rows])


@torch.no_grad()
def knn_top1(bank_feats: torch.Tensor, bank_labels: torch.Tensor, query_feats: torch.Tensor,
             query_labels: torch.Tensor, k: int = 20, temperature: float = 0.07,
             num_classes: Optional[int] = None, chunk: int = 1024) -> float:
    """Top-1 accuracy (%) of a weighted kNN vote with cosine similarity.

    Each query takes its ``k`` most similar bank features; neighbour j votes for its label
    with weight ``exp(cos_j / temperature)`` (``temperature <= 0``: one vote each).
    """
    if len(bank_feats) == 0 or len(query_feats) == 0:
        raise ValueError('kNN needs a non-empty bank and query set.')
    k = min(k, len(bank_feats))
    num_classes = num_classes or int(max(bank_labels.max(), query_labels.max())) + 1
    bank = F.normalize(bank_feats.float(), dim=1)
    correct = 0
    for start in range(0, len(query_feats), chunk):
        query = F.normalize(query_feats[start:start + chunk].float(), dim=1)
        sim, idx = (query @ bank.T).topk(k, dim=1)
        weight = (sim / temperature).exp() if temperature > 0 else torch.ones_like(sim)
        votes = torch.zeros(len(query), num_classes).scatter_add_(1, bank_labels[idx], weight)
        correct += (votes.argmax(dim=1) == query_labels[start:start + chunk]).sum().item()
    return 100.0 * correct / len(query_feats)


def _call_backbone(backbone, inputs):
    try:  # ConMIMViT / BEiTPretrainViT / MAEViT take a mask: None means unmasked
        return backbone(inputs, None)
    except TypeError:
        return backbone(inputs)


def make_encoder(model, encoder: str = 'student', pooling: str = 'mean'
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function mapping preprocessed images to pooled backbone features of ``model``.

    ``encoder='student'`` uses ``model.extract_feat`` (ConMIM, MAE and the other mmpretrain
    self-supervisors give unmasked backbone features there; classifiers give theirs);
    ``'teacher'`` uses the backbone of a momentum teacher (``model.teacher.module``).
    """
    if encoder == 'student':
        backbone = getattr(model, 'backbone', None)

        def forward(inputs):
            return model.extract_feat(inputs)
    elif encoder == 'teacher':
        teacher = getattr(model, 'teacher', None)
        module = getattr(teacher, 'module', None)
        if module is None:
            raise ValueError(f'{type(model).__name__} has no momentum teacher '
                             '(model.teacher.module); use encoder="student".')
        backbone = module['backbone'] if isinstance(module, torch.nn.ModuleDict) \
            else module.backbone

        def forward(inputs):
            return _call_backbone(backbone, inputs)
    else:
        raise ValueError(f"encoder must be 'student' or 'teacher', got '{encoder}'.")
    extra = getattr(backbone, 'num_extra_tokens', 1)

    def encode(inputs):
        feats = forward(inputs)
        if isinstance(feats, (tuple, list)):
            feats = feats[-1]
        return pool_tokens(feats, pooling, extra)

    return encode


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
        temperature (float): Vote weight ``exp(cos / temperature)``. Defaults to 0.07.
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
                 temperature: float = 0.07,
                 encoder: str = 'student',
                 pooling: str = 'mean',
                 before_train: bool = False,
                 prefix: str = 'knn') -> None:
        if interval < 1 or k < 1:
            raise ValueError(f'interval and k must be >= 1, got {interval} and {k}.')
        if encoder not in ('student', 'teacher'):
            raise ValueError(f"encoder must be 'student' or 'teacher', got '{encoder}'.")
        if pooling not in ('mean', 'cls', 'cls+mean'):
            raise ValueError(f"pooling must be 'mean', 'cls' or 'cls+mean', got '{pooling}'.")
        self.bank_cfg, self.val_cfg = bank_dataloader, val_dataloader
        self.interval, self.k, self.temperature = interval, k, temperature
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
        return knn_top1(*bank, *query, k=self.k, temperature=self.temperature)

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


__all__: Sequence[Union[str]] = ['KNNMonitorHook', 'extract_features', 'knn_top1',
                                 'make_encoder', 'pool_tokens']
