"""The config's ``compile`` for models whose update dynamo cannot trace: the computation only."""
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class CompileModelHook(Hook):
    """Carry out mmengine's ``compile`` switch by compiling the model's computation.

    ``compile=True`` or ``compile=dict(mode=..., backend=...)`` is mmengine's config key:
    ``Runner.train`` then ``torch.compile``-s the whole ``train_step``, optimiser update
    included, and dynamo fails inside ``AdamW.step`` as mmengine's ``OptimWrapper`` and
    parameter schedulers wrap it (torch 2.11: ``InternalTorchDynamoError:
    'UserDefinedExceptionObjectVariable' object has no attribute 'call_setattr'``; torch 2.14:
    ``'UserDefinedDictVariable' object has no attribute 'items'``). ``torch.compile`` is lazy,
    so this hook, before the first iteration, takes that compiled ``train_step`` back (nothing
    was compiled yet) and compiles ``methods`` with the same options instead. The update is a
    fused AdamW kernel already; what pays off is the forward and backward of the networks.
    The configs' runtime bases install it as ``default_hooks.compile``, so ``compile`` works the
    same through every launcher (``tools/train.py``, mmpretrain's, ``Runner.from_cfg``);
    ``compile=False`` (or None) compiles nothing. Checkpoint keys do not change.

    Args:
        methods (Sequence[str], optional): Methods of the (unwrapped) model to compile.
            Default: the model's ``compile_methods`` (``ConMIM``: ``contrastive_loss``, both
            encoders and the InfoNCE as one graph) or else ``extract_feat`` (backbone and neck
            of mmpretrain classifiers, mmseg segmentors and mmdet detectors), plus the
            ``compile_methods`` of the model's data preprocessor (``ConMIMDataPreprocessor``:
            the teacher view built on the device).
    """
    priority = 'VERY_HIGH'

    def __init__(self, methods: Optional[Sequence[str]] = None) -> None:
        self.methods = methods

    def before_run(self, runner) -> None:
        # before Runner.train hands ``compile`` to torch.compile: a clear error for a misplaced key
        options = runner.cfg.get('compile')
        if isinstance(options, dict) and 'methods' in options:
            raise ValueError(
                "compile holds torch.compile's options (mmengine passes them to torch.compile); "
                f"the methods to compile are CompileModelHook's: instead of compile.methods="
                f"{list(options['methods'])}, set default_hooks.compile.methods.")

    def before_train(self, runner) -> None:
        options = runner.cfg.get('compile')
        if not options:
            return
        options = {} if options is True else dict(options)
        # Runner._maybe_compile set the compiled train_step on the (wrapped) model: remove it
        vars(runner.model).pop('train_step', None)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        methods = self.methods or getattr(model, 'compile_methods', ('extract_feat', ))
        for name in methods:
            if not hasattr(model, name):
                raise AttributeError(f'CompileModelHook: {type(model).__name__} has no method '
                                     f'{name!r}; set default_hooks.compile.methods to ones it '
                                     'has.')
            setattr(model, name, torch.compile(getattr(model, name), **options))
        # and what the data preprocessor names (ConMIMDataPreprocessor: the teacher view)
        preprocessor = getattr(model, 'data_preprocessor', None)
        preprocessor_methods = () if self.methods else getattr(preprocessor, 'compile_methods',
                                                                ())
        for name in preprocessor_methods:
            setattr(preprocessor, name, torch.compile(getattr(preprocessor, name), **options))
        methods = [*methods, *(f'data_preprocessor.{name}' for name in preprocessor_methods)]
        runner.logger.info(f'torch.compile({", ".join(methods)}) of {type(model).__name__} '
                           f'with {options or "default options"}, the optimiser update '
                           'eager; the first iterations compile.')
