"""``compile=True`` through tools/train.py: compile the model's computation, not the update."""
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class CompileModelHook(Hook):
    """``torch.compile`` the methods that hold a model's computation before training starts.

    mmengine's own ``compile=True`` compiles the whole ``train_step``, optimiser update
    included, and dynamo fails inside ``AdamW.step`` as mmengine's ``OptimWrapper`` and
    parameter schedulers wrap it (torch 2.11: ``InternalTorchDynamoError:
    'UserDefinedExceptionObjectVariable' object has no attribute 'call_setattr'``; torch 2.14:
    ``'UserDefinedDictVariable' object has no attribute 'items'``). The update is a fused AdamW
    kernel already; what pays off is compiling the forward and backward of the networks.
    ``tools/train.py`` turns a config's ``compile`` into this hook.

    Args:
        methods (Sequence[str], optional): Methods of the (unwrapped) model to compile.
            Default: the model's ``compile_methods`` (``ConMIM``: ``contrastive_loss``, both
            encoders and the InfoNCE as one graph) or else ``extract_feat`` (backbone and neck
            of mmpretrain classifiers, mmseg segmentors and mmdet detectors), plus the
            ``compile_methods`` of the model's data preprocessor (``ConMIMDataPreprocessor``:
            the teacher view built on the device).
        **compile_kwargs: Passed to ``torch.compile`` (``mode``, ``backend``, ``dynamic``...).
    """
    priority = 'VERY_HIGH'

    def __init__(self, methods: Optional[Sequence[str]] = None, **compile_kwargs) -> None:
        self.methods = methods
        self.compile_kwargs = compile_kwargs

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        methods = self.methods or getattr(model, 'compile_methods', ('extract_feat', ))
        for name in methods:
            if not hasattr(model, name):
                raise AttributeError(f'CompileModelHook: {type(model).__name__} has no method '
                                     f'{name!r}; set compile=dict(methods=[...]) to one it has.')
            setattr(model, name, torch.compile(getattr(model, name), **self.compile_kwargs))
        # and what the data preprocessor names (ConMIMDataPreprocessor: the teacher view)
        preprocessor = getattr(model, 'data_preprocessor', None)
        preprocessor_methods = () if self.methods else getattr(preprocessor, 'compile_methods',
                                                                ())
        for name in preprocessor_methods:
            setattr(preprocessor, name,
                    torch.compile(getattr(preprocessor, name), **self.compile_kwargs))
        methods = [*methods, *(f'data_preprocessor.{name}' for name in preprocessor_methods)]
        runner.logger.info(f'torch.compile({", ".join(methods)}) of {type(model).__name__} '
                           f'with {self.compile_kwargs or "default options"}; the first '
                           'iterations compile.')
