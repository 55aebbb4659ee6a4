"""ConMIM's denoising contrast: intra-image, inter-patch InfoNCE."""
from contextlib import nullcontext
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

IGNORE_INDEX = -100  # F.cross_entropy's default: rows with this label do not count


def fp32(like: torch.Tensor):
    """A region where autocast is off on ``like``'s device: the InfoNCE (normalise, logits,
    cross-entropy) runs in fp32 under any AMP setting; at temperature 0.1 bf16 logits are off
    by up to 0.04 and tie argmaxes."""
    if not torch.amp.is_autocast_available(like.device.type):  # e.g. 'meta': no autocast
        return nullcontext()
    return torch.autocast(device_type=like.device.type, enabled=False)


@MODELS.register_module()
class ConMIMHead(BaseModule):
    """Each masked patch must pick its own teacher patch among all patches of its image.

    For image b and masked position i, the logits over j = 1..L are the cosine similarities
    ``cos(pred[b, i], target[b, j]) / temperature`` and the label is i. The loss is the mean
    cross-entropy over all masked positions of the batch; the other patches of the same image,
    masked or not, are the negatives.

    No step waits for the device: the masked rows are moved to the front by a stable sort
    (static shape) instead of being selected by ``logits[mask]``, whose size only the device
    knows, and the other rows carry the label ``IGNORE_INDEX``. ``F.cross_entropy`` then sums
    the masked rows in the same order as before and divides by their number, so the loss and
    its gradients are bit-identical to the boolean-mask selection (tests/models/test_head.py).

    Args:
        temperature (float): Softmax temperature tau. Defaults to 0.1 (the paper's value).
    """

    def __init__(self, temperature: float = 0.1, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if temperature <= 0:
            raise ValueError(f'temperature must be positive, got {temperature}.')
        self.temperature = temperature

    def logits_and_labels(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                          excluded: Optional[torch.Tensor] = None
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Logits (B*L, L) and labels (B*L,): the M masked patches first, in mask order, then
        the unmasked ones with the label ``IGNORE_INDEX``. Shapes never depend on the mask.

        ``excluded`` (B, L, L), optional: True where teacher patch j must not be a negative of
        row i (its logit becomes -inf); the diagonal (the positive) is never excluded."""
        if pred.shape != target.shape or pred.dim() != 3:
            raise ValueError(f'pred and target must both be (B, L, C), got {tuple(pred.shape)} '
                             f'and {tuple(target.shape)}.')
        B, L = pred.shape[:2]
        masked = mask.reshape(B * L).bool()
        with fp32(pred):  # under autocast, bmm would run in bf16/fp16 despite the casts
            pred = F.normalize(pred.float(), dim=-1)
            target = F.normalize(target.float(), dim=-1)
            logits = torch.bmm(pred, target.transpose(1, 2)) / self.temperature  # (B, L, L)
        if excluded is not None:
            own = torch.eye(L, dtype=torch.bool, device=logits.device)
            logits = logits.masked_fill(excluded.bool() & ~own, float('-inf'))
        labels = torch.arange(L, device=pred.device).repeat(B)
        labels = torch.where(masked, labels, IGNORE_INDEX)
        masked_first = torch.argsort((~masked).to(torch.uint8), stable=True)
        return logits.reshape(B * L, L)[masked_first], labels[masked_first]

    def _check_some_masked(self, mask: torch.Tensor) -> None:
        message = 'The mask selects no patch: ConMIM needs masked patches to learn.'
        # Checked on the device, without waiting for it (on the CPU the check is immediate,
        # and raises ValueError like the rest of the argument checks).
        if mask.device.type == 'cpu' and not torch.compiler.is_compiling():
            try:
                torch._assert_async(mask.any(), message)
            except RuntimeError:
                raise ValueError(message) from None
        else:
            torch._assert_async(mask.any(), message)

    def loss_and_accuracy(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                          excluded: Optional[torch.Tensor] = None
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The loss and how often a masked token's best match is its own teacher patch
        (``excluded``: see ``logits_and_labels``)."""
        logits, labels = self.logits_and_labels(pred, target, mask, excluded)
        self._check_some_masked(mask)
        with fp32(logits):
            loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
        with torch.no_grad():
            counted = labels != IGNORE_INDEX
            hits = (logits.argmax(dim=1) == labels) & counted
            accuracy = hits.sum().float() / counted.sum().float()
        return loss, accuracy

    def loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean InfoNCE over masked patches; ``mask`` (B, L) is True where masked."""
        return self.loss_and_accuracy(pred, target, mask)[0]
