"""The teacher view of a batch of crops, from the parameters the data workers drew."""
import torch
from torch import Tensor

from conmim_mm.datasets.teacher_perturbations import PARAM_INDEX
from .photometric import (adjust_hue, blend, contrast_degenerate, gaussian_blur, grayscale, luma,
                          solarize)

_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = range(4)  # torchvision's ColorJitter op indices
_SKIP = -1


def _param(params: Tensor, name: str) -> Tensor:
    return params[:, PARAM_INDEX[name]]


def _enhance(images: Tensor, op: Tensor, factors: Tensor) -> Tensor:
    """One Pillow ``ImageEnhance`` step per sample: ``op`` (N, ) picks brightness, contrast or
    saturation (``_SKIP``: unchanged); ``factors`` (N, 3) holds the three factors."""
    grey = luma(images)
    mean = contrast_degenerate(images)
    degenerate = torch.where(
        (op == _BRIGHTNESS).view(-1, 1, 1, 1), torch.zeros_like(grey),
        torch.where((op == _CONTRAST).view(-1, 1, 1, 1), mean.expand_as(grey), grey))
    factor = factors.gather(1, op.clamp(0, 2).view(-1, 1)).squeeze(1)
    factor = torch.where(op == _SKIP, torch.ones_like(factor), factor)
    return blend(degenerate, images, factor)  # factor 1 returns the images exactly


def color_jitter(images: Tensor, params: Tensor) -> Tensor:
    """torchvision's ``ColorJitter`` of each sample with its own factors and op order; the
    samples whose ``jitter`` flag is 0 come back unchanged.

    Brightness, contrast and saturation are blends, cheap for the whole batch; the hue op is
    not, so it is computed once: each sample's ops before its hue op run in three slots,
    then the hue op, then its ops after the hue op in three more slots (a slot a sample does
    not need leaves it unchanged). Shapes never depend on the drawn values.
    """
    jitter = _param(params, 'jitter') > 0.5
    order = params[:, PARAM_INDEX['order0']:PARAM_INDEX['order3'] + 1].round().long()
    hue_on = jitter & (_param(params, 'hue_on') > 0.5)
    # Without the hue op (hue range 0) its slot is a no-op, like torchvision's None factor.
    hue_at = (order == _HUE).long().argmax(dim=1)
    factors = torch.stack([_param(params, name) for name in
                           ('brightness', 'contrast', 'saturation')], dim=1)
    slots = torch.arange(3, device=params.device)
    before = torch.where(slots.view(1, -1) < hue_at.view(-1, 1),
                         order[:, :3], torch.full_like(order[:, :3], _SKIP))
    after_index = (hue_at.view(-1, 1) + 1 + slots.view(1, -1))
    after = torch.where(after_index < 4, order.gather(1, after_index.clamp(max=3)),
                        torch.full_like(after_index, _SKIP))
    skip = torch.full_like(before[:, 0], _SKIP)
    out = images
    for slot in range(3):
        out = _enhance(out, torch.where(jitter, before[:, slot], skip), factors)
    hue = torch.where(hue_on, _param(params, 'hue'), torch.zeros_like(factors[:, 0]))
    out = torch.where(hue_on.view(-1, 1, 1, 1), adjust_hue(out, hue), out)
    for slot in range(3):
        out = _enhance(out, torch.where(jitter, after[:, slot], skip), factors)
    return out


def teacher_view(images: Tensor, params: Tensor, max_blur_sigma: float = 2.) -> Tensor:
    """The official teacher perturbations of RGB ``images`` (N, 3, H, W; float, whole numbers
    in [0, 255]) with the per-sample ``params`` (N, len(PARAM_NAMES)) of
    ``DrawTeacherPerturbations``: colour jitter, grayscale, Gaussian blur, solarize, each
    applied where the sample's flag is set. Same values as the official PIL transforms.
    ``max_blur_sigma`` bounds the drawn blur sigmas (it sizes the blur kernel)."""
    def flag(name):
        return (_param(params, name) > 0.5).view(-1, 1, 1, 1)

    out = color_jitter(images, params)
    out = torch.where(flag('grayscale'), grayscale(out), out)
    blurred = gaussian_blur(out, _param(params, 'blur_sigma'), max_blur_sigma)
    out = torch.where(flag('blur'), blurred, out)
    threshold = _param(params, 'solarize_threshold').view(-1, 1, 1, 1)
    return torch.where(flag('solarize'), solarize(out, threshold), out)
