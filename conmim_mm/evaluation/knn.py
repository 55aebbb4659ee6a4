"""kNN top-1 on frozen backbone features: pooling, feature extraction and the weighted vote.

Used by ``KNNMonitorHook`` (during pretraining) and by the offline benchmark
``tools/benchmarks/fashion_mnist.py``.
"""
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import collect_results


def pool_tokens(feats: torch.Tensor, pooling: str = 'mean', num_extra_tokens: int = 1
                ) -> torch.Tensor:
    """One vector per image from a backbone output.

    ``feats`` is (B, D) (already pooled), (B, D, h, w) (a feature map: averaged) or
    (B, N, D) tokens whose first ``num_extra_tokens`` are [CLS]-like; ``pooling`` picks
    ``'cls'`` (the first token), ``'mean'`` (the mean of the patch tokens), ``'tokens'`` (every
    patch token in grid order, concatenated: a readout that keeps the layout) or several of
    them joined by ``+`` (e.g. ``'cls+mean'``), concatenated in that order.
    """
    if feats.dim() == 2:
        return feats
    if feats.dim() == 4:
        return feats.mean(dim=(2, 3))
    if feats.dim() != 3:
        raise ValueError(f'Cannot pool backbone features of shape {tuple(feats.shape)}.')
    patches = feats[:, num_extra_tokens:]
    parts = pooling.split('+')
    unknown = [p for p in parts if p not in ('cls', 'mean', 'tokens')]
    if unknown or not parts:
        raise ValueError(f"pooling must be 'cls', 'mean', 'tokens' or several joined by '+' "
                         f"(e.g. 'cls+mean'), got '{pooling}'.")
    if 'cls' in parts and num_extra_tokens < 1:
        raise ValueError(f"pooling='{pooling}' needs a [CLS] token; use pooling='mean'.")
    pooled = dict(cls=lambda: feats[:, 0], mean=lambda: patches.mean(dim=1),
                  tokens=lambda: patches.flatten(1))
    return torch.cat([pooled[p]() for p in parts], dim=1) if len(parts) > 1 \
        else pooled[parts[0]]()


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
             query_labels: torch.Tensor, k: int = 20, vote_temperature: float = 0.07,
             num_classes: Optional[int] = None, chunk: int = 1024) -> float:
    """Top-1 accuracy (%) of a weighted kNN vote with cosine similarity.

    Each query takes its ``k`` most similar bank features; neighbour j votes for its label
    with weight ``exp(cos_j / vote_temperature)`` (``vote_temperature <= 0``: one vote each;
    ``temperature`` names the InfoNCE temperature of ``ConMIMHead`` only).
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
        weight = (sim / vote_temperature).exp() if vote_temperature > 0 \
            else torch.ones_like(sim)
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
