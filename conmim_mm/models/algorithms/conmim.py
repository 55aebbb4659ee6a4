"""ConMIM: masked image modeling with denoising contrast (Yi et al., ICLR 2023)."""
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils.fused_ema import FusedCosineEMA


@MODELS.register_module()
class ConMIM(BaseSelfSupervisor):
    """ConMIM pretraining.

    The student (``backbone`` + token projector ``neck``) encodes the masked, weakly augmented
    view; the teacher, a slowly progressing momentum copy of both, encodes the full, strongly
    perturbed view of the same crop. ``head`` scores every masked student token against all
    teacher tokens of its image (intra-image InfoNCE).

    Args:
        backbone (dict): A ``ConMIMViT`` config with ``out_type='raw'`` and ``final_norm=True``.
        neck (dict): The token projector, e.g. a 3-layer ``NonLinearNeck`` (D-4096-4096-256).
        head (dict): A ``ConMIMHead``.
        base_momentum (float): Weight of the student in the first teacher update (mmengine's
            convention): 0.004 means a teacher coefficient of 0.996. Defaults to 0.004.
        end_momentum (float): Weight of the student at the last iteration; 0 means a teacher
            coefficient of 1.0. The weight follows a cosine over all training iterations.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 base_momentum: float = 0.004,
                 end_momentum: float = 0.,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.teacher = FusedCosineEMA(self._student(), momentum=base_momentum,
                                      end_momentum=end_momentum)

    def _student(self) -> nn.ModuleDict:
        """The trained modules, under the names the teacher copy uses."""
        return nn.ModuleDict(dict(backbone=self.backbone, neck=self.neck))

    @staticmethod
    def _encode(encoder: nn.ModuleDict, images: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Projected patch tokens (B, L, C) of ``images``; [CLS] is projected, then dropped."""
        tokens = encoder['backbone'](images, mask)[0]  # (B, 1 + L, D) after the final norm
        B, N, D = tokens.shape
        projected = encoder['neck']((tokens.reshape(B * N, D), ))[0]
        return projected.view(B, N, -1)[:, 1:]

    def extract_feat(self, inputs: torch.Tensor) -> tuple:
        """Unmasked student features."""
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        student_view, teacher_view = inputs
        mask = torch.stack([sample.mask for sample in data_samples]).flatten(1).bool()

        student = self._student()
        pred = self._encode(student, student_view, mask)
        with torch.no_grad():
            # Move the teacher towards the student after the last optimiser step (the first
            # call copies the student, so both start equal whatever the initialisation).
            self.teacher.update_parameters(student)
            target = self._encode(self.teacher.module, teacher_view)

        loss, accuracy = self.head.loss_and_accuracy(pred, target, mask)
        return dict(
            loss=loss,
            acc_patch=accuracy,  # which teacher patch the masked student token picks
            # new_full: filled on the device, no host-to-device copy
            teacher_momentum=loss.detach().new_full((), 1.0 - self.teacher.last_momentum),
            mask_ratio=mask.float().mean())
