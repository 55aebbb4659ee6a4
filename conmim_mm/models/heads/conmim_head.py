"""ConMIM's denoising contrast: intra-image, inter-patch InfoNCE."""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


@MODELS.register_module()
class ConMIMHead(BaseModule):
    """Each masked patch must pick its own teacher patch among all patches of its image.

    For image b and masked position i, the logits over j = 1..L are the cosine similarities
    ``cos(pred[b, i], target[b, j]) / temperature`` and the label is i. The loss is the mean
    cross-entropy over all masked positions of the batch; the other patches of the same image,
    masked or not, are the negatives.

    Args:
        temperature (float): Softmax temperature tau. Defaults to 0.1 (the paper's value).
    """

    def __init__(self, temperature: float = 0.1, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if temperature <= 0:
            raise ValueError(f'temperature must be positive, got {temperature}.')
        self.temperature = temperature

    def logits_and_labels(self, pred: torch.Tensor, target: torch.Tensor,
                          mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Logits (M, L) of the M masked patches and their labels (M,)."""
        if pred.shape != target.shape or pred.dim() != 3:
            raise ValueError(f'pred and target must both be (B, L, C), got {tuple(pred.shape)} '
                             f'and {tuple(target.shape)}.')
        mask = mask.reshape(pred.shape[:2]).bool()
        pred = F.normalize(pred.float(), dim=-1)
        target = F.normalize(target.float(), dim=-1)
        logits = torch.bmm(pred, target.transpose(1, 2)) / self.temperature  # (B, L, L)
        labels = torch.arange(pred.shape[1], device=pred.device).expand_as(mask)
        return logits[mask], labels[mask]

    def loss_and_accuracy(self, pred: torch.Tensor, target: torch.Tensor,
                          mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The loss and how often a masked token's best match is its own teacher patch."""
        logits, labels = self.logits_and_labels(pred, target, mask)
        if labels.numel() == 0:
            raise ValueError('The mask selects no patch: ConMIM needs masked patches to learn.')
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return loss, accuracy

    def loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean InfoNCE over masked patches; ``mask`` (B, L) is True where masked."""
        return self.loss_and_accuracy(pred, target, mask)[0]
