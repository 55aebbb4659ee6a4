"""torch.compile of the ConMIM step: no graph break in the encoders and the loss, and
``compile=True`` through tools/train.py (issue 9 §1, §3)."""
import os
import subprocess
import sys
from unittest import mock

import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from tests.helpers.paths import ROOT

TINY = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)


def build_conmim(**kwargs):
    model = MODELS.build(dict(
        type='ConMIM',
        backbone=dict(type='ConMIMViT', arch=TINY, img_size=32, patch_size=8, out_type='raw',
                      final_norm=True, use_rel_pos_bias=False, use_shared_rel_pos_bias=True),
        neck=dict(type='NonLinearNeck', in_channels=32, hid_channels=64, out_channels=16,
                  num_layers=3, with_bias=False, with_last_bn=True, with_last_bn_affine=False,
                  with_avg_pool=False, norm_cfg=dict(type='BN1d')),
        head=dict(type='ConMIMHead', temperature=0.1), **kwargs))
    model.init_weights()
    return model


def views_and_mask(B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    views = [torch.randn(B, 3, 32, 32, generator=g) for _ in range(2)]
    mask = torch.rand(B, 16, generator=g) < torch.rand(B, 1, generator=g)  # varying counts
    mask[:, 0] = True
    return views, mask


def graph_breaks(fn, *args):
    torch._dynamo.reset()
    return torch._dynamo.explain(fn)(*args).graph_break_count


def test_no_graph_break_in_student_and_teacher_encoders_and_head(max_iters):
    model = build_conmim()
    (student_view, teacher_view), mask = views_and_mask()
    assert graph_breaks(model._encode, model.backbone, model.neck, student_view, mask) == 0
    teacher = model.teacher.module
    with torch.no_grad():
        assert graph_breaks(model._encode, teacher['backbone'], teacher['neck'], teacher_view) == 0
    pred = model._encode(model.backbone, model.neck, student_view, mask)
    target = pred.detach().flip(0)
    assert graph_breaks(model.head.loss_and_accuracy, pred, target, mask) == 0


def test_full_conmim_loss_compiles_as_one_graph(max_iters):
    """Student and teacher encoders plus the InfoNCE, as one graph (``fullgraph=True``):
    nothing in the step needs the host, whatever the number of masked patches."""
    model = build_conmim()
    compiled = torch.compile(model.contrastive_loss, fullgraph=True, backend='eager')
    for seed in range(2):
        (student_view, teacher_view), mask = views_and_mask(seed=seed)
        losses = compiled(student_view, teacher_view, mask)
        expected = model.contrastive_loss(student_view, teacher_view, mask)
        assert torch.equal(losses[0], expected[0])


@pytest.mark.slow
def test_train_py_compile_true_trains_and_writes_a_checkpoint(tmp_path, fashion_mnist):
    """The demo config with mmengine's switch (``compile``) through tools/train.py, at a
    few iterations. ``compile=dict(backend='aot_eager')`` runs all of torch.compile (dynamo and the
    autograd graph) except inductor's code generation, which takes minutes on 2 CPU cores;
    plain ``compile=True`` was run by hand (docs/benchmarks.md)."""
    cmd = [sys.executable, 'tools/train.py', 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py',
           '--work-dir', str(tmp_path), '--cfg-options',
           # the demo config says compile = False (CPU): replace it by the dict
           'compile._delete_=True', 'compile.backend=aot_eager', 'train_dataloader.dataset.indices=32',
           'train_dataloader.batch_size=16', 'train_dataloader.num_workers=0',
           'auto_scale_lr.base_batch_size=16', 'train_cfg.max_epochs=1', 'model.backbone.arch.num_layers=2',
           'default_hooks.logger.interval=1']
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'torch.compile(contrastive_loss) of ConMIM' in proc.stdout + proc.stderr
    assert os.path.exists(tmp_path / 'epoch_1.pth')
    state = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu')['state_dict']
    assert not any('_orig_mod' in key for key in state)  # checkpoint keys unchanged


def hook_run(compile_cfg, methods=None):
    """CompileModelHook around what Runner.train does with ``compile``: before_run, then
    mmengine's compile of the whole train_step, then before_train."""
    from types import SimpleNamespace

    from mmengine.config import Config

    from conmim_mm.engine.hooks import CompileModelHook
    model = build_conmim()
    runner = SimpleNamespace(cfg=Config(dict(compile=compile_cfg)), model=model,
                             logger=mock.MagicMock())
    hook = CompileModelHook(methods=methods)
    hook.before_run(runner)
    if compile_cfg:  # Runner._maybe_compile
        model.train_step = torch.compile(model.train_step)
    with mock.patch.object(torch, 'compile', side_effect=lambda fn, **kw: (fn, kw)) as compile:
        hook.before_train(runner)
    return model, compile


def test_compile_hook_compiles_the_computation_and_keeps_the_update_eager():
    model, compile = hook_run(dict(backend='aot_eager'))
    assert 'train_step' not in vars(model)  # mmengine's whole-step compile taken back
    assert model.contrastive_loss[1] == dict(backend='aot_eager')
    assert compile.call_count == len(model.compile_methods)
    model, compile = hook_run(False)
    assert compile.call_count == 0 and 'contrastive_loss' not in vars(model)


def test_compile_methods_belong_to_the_hook_not_to_torch_compile_options():
    with pytest.raises(ValueError, match='default_hooks.compile.methods'):
        hook_run(dict(methods=['loss']))
    model, _ = hook_run(True, methods=['extract_feat'])
    assert model.extract_feat[1] == {} and 'contrastive_loss' not in vars(model)


def test_fine_tuning_classifier_features_compile_without_graph_break():
    """What ``compile=True`` compiles for cls/seg/det configs: ``extract_feat`` (the ConMIMViT
    backbone, with drop path and relative position bias as in fine-tuning)."""
    from mmengine.config import Config
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py'))
    cfg.model.backbone.arch = dict(embed_dims=32, num_layers=2, num_heads=4,
                                   feedforward_channels=64)
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.head.in_channels = 32
    model = MODELS.build(cfg.model).train()
    images = torch.randn(2, 3, 28, 28)
    assert graph_breaks(model.extract_feat, images) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_training_step_makes_no_synchronising_call_on_cuda(max_iters):
    """The whole mmengine training step (data preprocessor, student + teacher forward, EMA,
    InfoNCE, backward, fused AdamW) under ``set_sync_debug_mode('error')``: any ``.item()``,
    boolean-mask indexing or other call that makes the host wait for the GPU raises."""
    from mmengine.optim import build_optim_wrapper
    model = build_conmim(data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0.] * 3,
                                                std=[1.] * 3)).cuda()
    optim_wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, fused=True)))
    (student_view, teacher_view), mask = views_and_mask()
    samples = [DataSample().set_mask(m.view(4, 4).cuda()) for m in mask]
    data = dict(inputs=[student_view.cuda(), teacher_view.cuda()], data_samples=samples)
    model.train_step(data, optim_wrapper)  # the first EMA update reads its step counter once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        for _ in range(2):
            log_vars = model.train_step(data, optim_wrapper)
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert torch.isfinite(log_vars['loss']).item()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_training_step_with_device_views_makes_no_synchronising_call_on_cuda(max_iters):
    """The same with the views built on the device (issue 15): uint8 crops and drawn
    parameters straight from the dataloader (on the host, pinned), ``ConMIMDataPreprocessor``
    builds both views in the step; nothing waits for the GPU."""
    from mmengine.optim import build_optim_wrapper

    from conmim_mm.datasets import DrawTeacherPerturbations
    model = build_conmim(data_preprocessor=dict(
        type='ConMIMDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], to_rgb=True, non_blocking=True)).cuda()
    optim_wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, fused=True)))
    _, mask = views_and_mask()
    draw = DrawTeacherPerturbations(jitter_prob=1., grayscale_prob=.5, blur_prob=.5,
                                    solarize_prob=.5)
    crops = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8).pin_memory()

    def batch():  # the preprocessor takes the parameters off the data samples: a new batch
        samples = [DataSample().set_mask(m.view(4, 4)) for m in mask]
        for sample in samples:
            sample.set_field(torch.from_numpy(draw(dict())['teacher_params']), 'teacher_params')
        return dict(inputs=crops, data_samples=samples)

    model.train_step(batch(), optim_wrapper)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        for _ in range(2):
            log_vars = model.train_step(batch(), optim_wrapper)
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert torch.isfinite(log_vars['loss']).item()
