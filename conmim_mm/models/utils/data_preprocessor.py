"""ConMIM's two views built on the training device from one crop per image."""
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.structures import BaseDataElement
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS
from torch import Tensor
from torch._inductor import config as inductor_config

from conmim_mm.datasets.teacher_perturbations import PARAM_INDEX, PARAM_NAMES
from .teacher_view import teacher_view

PARAMS_KEY = 'teacher_params'
# Inductor settings under which compiled element-wise code rounds as eager fp32 does: no fused
# multiply-add contraction (Triton's default) and IEEE division (Triton's default is an
# approximate one). Without them a compiled teacher view can differ from Pillow's by one grey
# level on some pixels.
EAGER_ROUNDING = {'emulate_precision_casts': True, 'eager_numerics.division_rounding': True}


def samples_to_device(data_samples: Optional[Sequence[BaseDataElement]], device,
                      non_blocking: bool = False) -> Optional[Sequence[BaseDataElement]]:
    """Move the tensors of a batch's data samples to ``device`` in one copy per field.

    mmengine's ``cast_data`` moves each sample on its own: two small copies per image for a
    mask and a label. Here a field that every sample holds as a tensor of one shape and dtype
    (masks, labels) is stacked on the host, copied once, and each sample gets its row, a view
    of the copy; any other tensor field is moved per sample. The samples are changed in place.
    """
    if not data_samples:
        return data_samples
    for key in data_samples[0].keys():
        values = [sample.get(key) for sample in data_samples]
        first = values[0]
        if all(torch.is_tensor(v) and v.shape == first.shape and v.dtype == first.dtype
               for v in values):
            rows = torch.stack(values).to(device, non_blocking=non_blocking).unbind(0)
        else:
            rows = [v.to(device, non_blocking=non_blocking) if hasattr(v, 'to') else v
                    for v in values]
        for sample, row in zip(data_samples, rows):
            setattr(sample, key, row)
    return data_samples


@MODELS.register_module()
class ConMIMDataPreprocessor(SelfSupDataPreprocessor):
    """Builds the student and teacher views of ConMIM on the device.

    With the pipeline of ``configs/_base_/datasets/imagenet_conmim.py`` the data workers
    send one uint8 crop per image (decoded, cropped, flipped, masked) and the teacher's
    perturbation parameters drawn by ``DrawTeacherPerturbations`` (``data_samples[i].
    teacher_params``). This preprocessor then returns ``[student, teacher]``: the student
    view is the crop normalised; the teacher view is the same crop with the official
    perturbations (colour jitter in the drawn order, grayscale, Gaussian blur, solarize;
    the same values as the official PIL transforms, see ``teacher_view``), normalised. Crop
    and flip are shared by construction.

    Every sample goes through every op and keeps its own result where its flag is set
    (``torch.where``): no host synchronisation, no shape that depends on the draws. The
    parameters are stacked on the host and copied in one piece. The same code runs on the
    CPU.

    Inputs that already hold two views (the CPU pipeline, ``MultiView``) are normalised as
    ``SelfSupDataPreprocessor`` does, so one model config serves both pipelines.

    Eager, the teacher view is a few hundred element-wise kernels over the batch; compiled
    they fuse into a few. ``compile=True`` in a config (``CompileModelHook``) compiles it
    with the model (``compile_methods``); the ``compile`` argument does it alone.

    Args:
        max_blur_sigma (float): Largest blur sigma the pipeline draws; it sizes the blur
            kernel. Default 2 (the official range).
        compile (bool | dict): ``torch.compile`` the teacher view (a dict: its options).
            Defaults to False.
        **kwargs: ``SelfSupDataPreprocessor``'s arguments (``mean``, ``std``, ``to_rgb``,
            ``non_blocking``...).
    """

    compile_methods = ('perturb', )  # what CompileModelHook compiles

    def __init__(self, max_blur_sigma: float = 2., compile=False, **kwargs) -> None:
        super().__init__(**kwargs)
        if not max_blur_sigma > 0:
            raise ValueError(f'max_blur_sigma must be positive, got {max_blur_sigma}.')
        self.max_blur_sigma = float(max_blur_sigma)
        if compile:
            options = compile if isinstance(compile, dict) else {}
            self.perturb = torch.compile(self.perturb, **options)

    def teacher_view(self, images: Tensor, params: Tensor) -> Tensor:
        """The perturbed RGB crops (float, whole numbers in [0, 255]); see ``teacher_view``.

        Pillow's rounding after every op needs eager fp32 arithmetic; when ``perturb`` is
        compiled, inductor generates it under ``EAGER_ROUNDING``."""
        with inductor_config.patch(EAGER_ROUNDING):
            return self.perturb(images, params)

    def perturb(self, images: Tensor, params: Tensor) -> Tensor:
        """``teacher_view`` of ``images`` with ``params``: what compiles."""
        return teacher_view(images, params, max_blur_sigma=self.max_blur_sigma)

    def _stack_params(self, data_samples) -> Tensor:
        """The (N, P) parameters of the batch, checked on the host before the copy."""
        missing = ['all'] if data_samples is None else [
            i for i, sample in enumerate(data_samples) if PARAMS_KEY not in sample]
        if missing:
            raise KeyError(
                f'ConMIMDataPreprocessor got one view per image but data sample(s) {missing} '
                f'have no {PARAMS_KEY!r}: put DrawTeacherPerturbations after the crop and flip '
                f"of the training pipeline and PackInputs(algorithm_keys=['{PARAMS_KEY}']), or "
                'give two views (MultiView).')
        params = torch.stack([_host_tensor(sample.get(PARAMS_KEY)) for sample in data_samples])
        for sample in data_samples:
            delattr(sample, PARAMS_KEY)  # the model does not need them on the device
        if params.shape[1] != len(PARAM_NAMES):
            raise ValueError(f'{PARAMS_KEY} has {params.shape[1]} values per image, expected '
                             f'{len(PARAM_NAMES)} ({", ".join(PARAM_NAMES)}).')
        if params.device.type == 'cpu':  # a check on the host costs no device sync
            sigma = params[:, PARAM_INDEX['blur_sigma']]
            if bool((sigma > self.max_blur_sigma).any()):
                raise ValueError(
                    f'A blur sigma of {float(sigma.max()):.3g} exceeds max_blur_sigma='
                    f'{self.max_blur_sigma:g} of ConMIMDataPreprocessor: raise it to the '
                    "upper end of DrawTeacherPerturbations' blur_sigma.")
        return params

    def _to_device(self, inputs, data_samples):
        """The batch on the model's device: one copy per input tensor and per sample field."""
        inputs = self.cast_data(inputs)
        return inputs, samples_to_device(data_samples, self.device, self._non_blocking)

    def _normalize(self, views: List[Tensor]) -> List[Tensor]:
        """``SelfSupDataPreprocessor``'s channel conversion, float cast and normalisation of
        each view, with the channels flipped instead of indexed by a Python list (an index
        tensor copied to the device for every view)."""
        if self._channel_conversion:
            views = [view.flip(1) for view in views]  # BGR <-> RGB
        views = [view.float() for view in views]
        if self._enable_normalize:
            views = [(view - self.mean) / self.std for view in views]
        return views

    def forward(self, data: dict, training: bool = False) -> dict:
        """``data['inputs']``: (N, 3, H, W) crops, uint8 (or a list of two views)."""
        if not isinstance(data, dict):
            raise TypeError('ConMIMDataPreprocessor needs batched inputs: set '
                            "collate_fn=dict(type='default_collate') in the dataloader.")
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):  # two views from the CPU pipeline
            views, data_samples = self._to_device(list(inputs), data.get('data_samples'))
            return {'inputs': self._normalize(views), 'data_samples': data_samples}
        if not isinstance(inputs, Tensor) or inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError('ConMIMDataPreprocessor expects a batch of crops (N, 3, H, W), '
                             f'got {type(inputs).__name__} of shape '
                             f'{tuple(getattr(inputs, "shape", ()))}.')
        data_samples: Optional[list] = data.get('data_samples')
        params = self._stack_params(data_samples)
        (inputs, params), data_samples = self._to_device([inputs, params], data_samples)
        images = inputs.float()
        if self._channel_conversion:
            images = images.flip(1)  # BGR <-> RGB without an index tensor
        views = [images, self.teacher_view(images, params)]
        if self._enable_normalize:
            views = [(view - self.mean) / self.std for view in views]
        return {'inputs': views, 'data_samples': data_samples}


def _host_tensor(values) -> Tensor:
    """One sample's drawn parameters as a float32 host tensor (a tensor or an array)."""
    if not torch.is_tensor(values):
        values = torch.from_numpy(np.asarray(values, dtype=np.float32))
    return values.float()
