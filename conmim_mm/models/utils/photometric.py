"""The teacher view's photometric perturbations as batched tensor ops, on any device.

The official ConMIM code perturbs a PIL image: torchvision's ``ColorJitter`` (Pillow's
``ImageEnhance`` and HSV conversion), ``RandomGrayscale`` (Pillow's ``convert('L')``),
``ImageFilter.GaussianBlur`` and ``ImageOps.solarize``. Each function here reproduces one of
these on a batch of float images that hold whole numbers in [0, 255] (RGB, NCHW), with the
same rounding after every op as Pillow's 8-bit images and the same float32 / float64
arithmetic where it decides a rounding, so the result is the official one
(tests/models/test_photometric_views.py: equal on its images, and on the RGB cube for hue).

Every factor is a per-sample tensor of shape (N, ): a batch mixes samples with different
parameters and the ops never look at the values on the host (no synchronisation, no
data-dependent shape), which keeps them compile-friendly.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor

# Pillow's ITU-R 601-2 luma in 16-bit fixed point, rounded: L = (R*19595 + G*38470 + B*7471
# + 2**15) >> 16 (libImaging/Convert.c). The sums stay below 2**24, exact in float32.
_LUMA_WEIGHTS = (19595., 38470., 7471.)


def _per_sample(factor: Tensor, images: Tensor) -> Tensor:
    return factor.to(images.dtype).view(-1, *([1] * (images.dim() - 1)))


def luma(images: Tensor) -> Tensor:
    """Pillow's ``convert('L')`` of RGB images (N, 3, H, W): grey levels (N, 1, H, W)."""
    r, g, b = images.unbind(1)
    weighted = r * _LUMA_WEIGHTS[0] + g * _LUMA_WEIGHTS[1] + b * _LUMA_WEIGHTS[2] + 32768.
    return torch.floor(weighted / 65536.).unsqueeze(1)


def blend(degenerate: Tensor, images: Tensor, factor: Tensor) -> Tensor:
    """Pillow's ``Image.blend(degenerate, images, factor)``: ``degenerate + factor * (images -
    degenerate)``, clipped to [0, 255] and truncated to whole numbers (libImaging/Blend.c)."""
    factor = _per_sample(factor, images)
    return torch.floor((degenerate + factor * (images - degenerate)).clamp(0., 255.))


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """``ImageEnhance.Brightness``: blend with black."""
    return blend(torch.zeros_like(images), images, factor)


def contrast_degenerate(images: Tensor) -> Tensor:
    """``ImageEnhance.Contrast``'s grey image: the mean luma, rounded, per sample."""
    mean = luma(images).mean(dim=(1, 2, 3), keepdim=True)
    return torch.floor(mean + 0.5)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """``ImageEnhance.Contrast``: blend with the image's mean grey level."""
    return blend(contrast_degenerate(images), images, factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """``ImageEnhance.Color``: blend with the image's own grey version."""
    return blend(luma(images), images, factor)


def hue_shift(hue_factor: Tensor) -> Tensor:
    """The shift of Pillow's 8-bit hue channel that torchvision's ``adjust_hue`` adds for
    ``hue_factor`` in [-0.5, 0.5]: ``int(hue_factor * 255)`` (truncated), modulo 256."""
    return torch.remainder(torch.trunc(hue_factor * 255.), 256.)


def adjust_hue(images: Tensor, hue_factor: Tensor) -> Tensor:
    """torchvision's ``adjust_hue`` of a PIL image: RGB -> Pillow's 8-bit HSV, add
    :func:`hue_shift` to H (wrapping around), HSV -> RGB (libImaging/Convert.c ``rgb2hsv``,
    ``hsv2rgb``). Pillow truncates H and S to 8 bits, so a zero shift still changes colours
    by a level or two: this matters for matching the official op."""
    r, g, b = images.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    chroma = maxc - minc
    grey = chroma == 0
    safe_chroma = torch.where(grey, torch.ones_like(chroma), chroma)
    # Pillow's float32 / double mix: ratios in float32, the hue sum and wrap in double.
    rc, gc, bc = ((maxc - c).float() / safe_chroma.float() for c in (r, g, b))
    rc, gc, bc = rc.double(), gc.double(), bc.double()
    h = torch.where(r == maxc, (bc - gc).float().double(),
                    torch.where(g == maxc, 2. + rc - bc, 4. + gc - rc)).float()
    h = torch.remainder(h.double() / 6. + 1., 1.).float()
    s = safe_chroma.float() / torch.where(grey, torch.ones_like(maxc), maxc).float()
    h8 = torch.where(grey, torch.zeros_like(h), torch.floor(h.double() * 255.).float())
    s8 = torch.where(grey, torch.zeros_like(h), torch.floor(s.double() * 255.).float())
    h8 = torch.remainder(h8 + _per_sample(hue_shift(hue_factor), h8), 256.)

    h8, s8, v = h8.double(), s8.double(), maxc.double()
    sector = torch.floor(h8 * 6. / 255.)
    f = (h8 * 6. / 255. - sector).float().double()
    fs = (s8 / 255.).float().double()
    p = torch.floor(v * (1. - fs) + 0.5)  # C round(): half away from zero, values >= 0
    q = torch.floor(v * (1. - fs * f) + 0.5)
    t = torch.floor(v * (1. - fs * (1. - f)) + 0.5)
    sector = torch.remainder(sector, 6.)
    # (R, G, B) per sector: (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q)
    choices = {0.: (v, t, p), 1.: (q, v, p), 2.: (p, v, t), 3.: (p, q, v), 4.: (t, p, v),
               5.: (v, p, q)}
    channels = []
    for c in range(3):
        out = choices[5.][c]
        for k in (4., 3., 2., 1., 0.):
            out = torch.where(sector == k, choices[k][c], out)
        channels.append(torch.where(s8 == 0, v, out))
    return torch.stack(channels, dim=1).to(images.dtype)


def grayscale(images: Tensor) -> Tensor:
    """torchvision's ``rgb_to_grayscale(num_output_channels=3)`` of a PIL image."""
    return luma(images).expand_as(images)


def solarize(images: Tensor, threshold=128.) -> Tensor:
    """``ImageOps.solarize``: levels at or above ``threshold`` (a number or a tensor that
    broadcasts, e.g. (N, 1, 1, 1)) are inverted."""
    return torch.where(images >= threshold, 255. - images, images)


def box_blur_radius(sigma: Tensor, passes: int = 3) -> Tensor:
    """The extended box radius Pillow's ``GaussianBlur(sigma)`` uses for each of its
    ``passes`` box blurs (libImaging/BoxBlur.c, after Gwosdek et al. 2011), in float32."""
    sigma = sigma.float()
    sigma2 = sigma * sigma / passes
    length = torch.sqrt(12. * sigma2.double() + 1.).float()
    whole = torch.floor((length.double() - 1.) / 2.).float()
    frac = (2 * whole + 1) * (whole * (whole + 1) - 3 * sigma2)
    frac = frac / (6 * (sigma2 - (whole + 1) * (whole + 1)))
    return whole + frac


def box_blur_taps(radius: Tensor, max_radius: int) -> Tensor:
    """Pillow's fixed-point weights (out of 2**24) of one box blur of fractional ``radius``:
    ``2 r + 1`` full taps and two fractional outer taps, as a (N, 2 max_radius + 3) kernel."""
    whole = torch.floor(radius)
    full = torch.floor(float(1 << 24) / (radius.float() * 2 + 1)).double()  # float32, as C
    outer = torch.floor(((1 << 24) - (whole.double() * 2 + 1) * full) / 2)
    offsets = torch.arange(-max_radius - 1, max_radius + 2, device=radius.device).double()
    distance = offsets.abs().view(1, -1)
    whole = whole.double().view(-1, 1)
    return torch.where(distance <= whole, full.view(-1, 1),
                       torch.where(distance == whole + 1, outer.view(-1, 1),
                                   torch.zeros_like(distance)))


def _box_blur(images: Tensor, taps: Tensor, dim: int) -> Tensor:
    """One box blur pass along rows (``dim=-1``) or columns (``dim=-2``), edges repeated,
    rounded like Pillow: one depthwise convolution with each sample's kernel."""
    n, c, h, w = images.shape
    reach = (taps.shape[1] - 1) // 2
    pad = (reach, reach, 0, 0) if dim == -1 else (0, 0, reach, reach)
    shape = (n * c, 1, 1, -1) if dim == -1 else (n * c, 1, -1, 1)
    padded = F.pad(images.reshape(1, n * c, h, w), pad, mode='replicate')
    total = F.conv2d(padded, taps.repeat_interleave(c, dim=0).view(shape), groups=n * c)
    return torch.floor((total.view(n, c, h, w) + float(1 << 23)) / float(1 << 24))


def box_blur_reach(max_sigma: float, passes: int = 3) -> int:
    """How far (in pixels) Pillow's box blurs for any sigma up to ``max_sigma`` read: the
    whole part of the box radius plus the fractional outer tap."""
    return int(math.floor((math.sqrt(12. * max_sigma ** 2 / passes + 1.) - 1.) / 2.)) + 1


def gaussian_blur(images: Tensor, sigma: Tensor, max_sigma: float = 2.,
                  passes: int = 3) -> Tensor:
    """Pillow's ``ImageFilter.GaussianBlur(radius=sigma)``: ``passes`` extended box blurs
    along rows, then along columns, each rounded to 8 bits, in exact integer arithmetic
    (float64: the fixed-point sums exceed float32's exact range). A true Gaussian kernel
    differs from it by up to 6 levels at sigma in [0.3, 1] (tests/models/test_photometric_views.py).

    ``max_sigma`` sizes the kernel (5 taps up to 2) without reading ``sigma`` (N, ) on the
    host; a larger sigma would lose its outer taps (``ConMIMDataPreprocessor`` checks it).
    """
    reach = box_blur_reach(max_sigma, passes)
    taps = box_blur_taps(box_blur_radius(sigma, passes), reach - 1)
    out = images.double()
    for dim in (-1, -2):  # Pillow blurs every row ``passes`` times, then every column
        for _ in range(passes):
            out = _box_blur(out, taps, dim)
    return out.to(images.dtype)
