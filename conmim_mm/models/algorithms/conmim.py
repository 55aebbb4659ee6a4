"""ConMIM: masked image modeling with denoising contrast (Yi et al., ICLR 2023)."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils.fused_ema import FusedCosineEMA, optimizer_step_begins


def identical_patches(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, L, L) bool: True where patches i and j of an image have the same pixels."""
    patches = F.unfold(images.float(), kernel_size=patch_size, stride=patch_size)  # (B, C*p*p, L)
    patches = patches.transpose(1, 2)
    return torch.cdist(patches, patches, compute_mode='donot_use_mm_for_euclid_dist') == 0


# Arguments that earlier versions took, and why they went.
REMOVED_ARGUMENTS = dict(
    teacher_ema='the teacher is always FusedCosineEMA (momentum from `base_momentum` and '
    '`end_momentum`). To compare another averaged-model class, replace `model.teacher` after '
    'building the model, as tools/analysis/benchmark_pretrain.py does for its stock side.',
    project_masked_only='the student projector sees every token, as in the paper. Projecting '
    'the masked tokens only (BatchNorm statistics of those tokens alone) lowered the validation '
    'kNN and linear probe under the small-scale protocol (docs/results.md, Ablations).')


@MODELS.register_module()
class ConMIM(BaseSelfSupervisor):
    """ConMIM pretraining.

    The student (``backbone`` + token projector ``neck``) encodes the masked, weakly augmented
    view; the teacher, a slowly progressing momentum copy of both, encodes the full, strongly
    perturbed view of the same crop. ``head`` scores every masked student token against all
    teacher tokens of its image (intra-image InfoNCE).

    The teacher is a ``FusedCosineEMA`` with ``keep_buffers=True``: as in the official code,
    only the parameters are averaged and the teacher keeps its own BatchNorm running statistics,
    which its forward (in train mode, like the official teacher's) updates. ``loss`` logs the
    student's weight in the last update (the convention of ``base_momentum``) as
    ``ema_momentum``.

    Args:
        backbone (dict): A ``ConMIMViT`` config with ``out_type='raw'`` and ``final_norm=True``.
        neck (dict): The token projector, e.g. a 3-layer ``NonLinearNeck`` (D-4096-4096-256).
        head (dict): A ``ConMIMHead``.
        base_momentum (float): Weight of the student in the first teacher update (mmengine's
            convention): 0.004 means a teacher coefficient of 0.996. Defaults to 0.004.
        end_momentum (float): Weight of the student at the last iteration; 0 means a teacher
            coefficient of 1.0. The weight follows a cosine over all training iterations.
        exclude_identical_negatives (bool): Not in the paper. Teacher patches whose pixels are
            identical to the masked patch's own (in the student view) are no negatives of it:
            the InfoNCE no longer asks the student to tell apart patches that only their
            position distinguishes. Natural photos hardly have such patches; Fashion-MNIST
            crops are about half uniform black background (docs/results.md has the runs).
            Costs a (B, L, L) patch comparison. Defaults to False (the official loss).
    """

    # What ``compile=True`` compiles (tools/train.py, CompileModelHook): both encoders and
    # the InfoNCE, one graph; the EMA update and the optimiser step stay eager.
    compile_methods = ('contrastive_loss', )

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 base_momentum: float = 0.004,
                 end_momentum: float = 0.,
                 exclude_identical_negatives: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 **removed) -> None:
        for name in removed:
            if name in REMOVED_ARGUMENTS:
                raise TypeError(f'ConMIM no longer takes `{name}`: {REMOVED_ARGUMENTS[name]}')
        if removed:
            raise TypeError(f'ConMIM got unexpected arguments {sorted(removed)}.')
        super().__init__(backbone=backbone, neck=neck, head=head,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.teacher = FusedCosineEMA(self._student(), momentum=base_momentum,
                                      end_momentum=end_momentum, keep_buffers=True)
        self.exclude_identical_negatives = exclude_identical_negatives

    def _student(self) -> nn.ModuleDict:
        """The trained modules, under the names the teacher copy uses."""
        return nn.ModuleDict(dict(backbone=self.backbone, neck=self.neck))

    @staticmethod
    def _encode(backbone: nn.Module, neck: nn.Module, images: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Projected patch tokens (B, L, C) of ``images``; [CLS] is projected, then dropped."""
        tokens = backbone(images, mask)[0]  # (B, 1 + L, D) after the final norm
        B, N, D = tokens.shape
        projected = neck((tokens.reshape(B * N, D), ))[0]
        return projected.view(B, N, -1)[:, 1:]

    def contrastive_loss(self, student_view: torch.Tensor, teacher_view: torch.Tensor,
                         mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Student and teacher encodings and the InfoNCE: (loss, masked-patch accuracy).

        Pure tensor code with shapes fixed by the inputs: it compiles as one graph
        (``torch.compile(fullgraph=True)``, tests/engine/test_compile.py) and never waits for the
        device.
        """
        pred = self._encode(self.backbone, self.neck, student_view, mask)
        with torch.no_grad():
            teacher = self.teacher.module
            target = self._encode(teacher['backbone'], teacher['neck'], teacher_view)
        excluded = identical_patches(student_view, self.backbone.patch_size) \
            if self.exclude_identical_negatives else None
        return self.head.loss_and_accuracy(pred, target, mask, excluded)

    def extract_feat(self, inputs: torch.Tensor) -> tuple:
        """Unmasked student features."""
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        student_view, teacher_view = inputs
        mask = torch.stack([sample.mask for sample in data_samples]).flatten(1).bool()

        if optimizer_step_begins():
            with torch.no_grad():
                # Move the teacher towards the student after the last optimiser step (the first
                # call copies the student, so both start equal whatever the initialisation);
                # once per optimiser step, at its first micro-batch under gradient
                # accumulation. Host-side control flow (step count, schedule), so it stays
                # outside the compiled loss; done before the student's forward, which changes
                # no parameter (the BatchNorm running statistics are not averaged: the teacher
                # keeps its own, and normalises with batch statistics in training, so the loss
                # does not read them).
                self.teacher.update_parameters(self._student())
        loss, accuracy = self.contrastive_loss(student_view, teacher_view, mask)
        losses = dict(
            loss=loss,
            acc_patch=accuracy,  # which teacher patch the masked student token picks
            mask_ratio=mask.float().mean())
        # FusedCosineEMA keeps it on the host (mmpretrain's CosineEMA, which the speed benchmark
        # puts in its place, does not)
        if hasattr(self.teacher, 'last_momentum'):
            # The student's weight, as `base_momentum`; new_full: filled on the device, no
            # host-to-device copy.
            losses['ema_momentum'] = loss.detach().new_full((), self.teacher.last_momentum)
        return losses
