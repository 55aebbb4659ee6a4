"""tools/analysis/benchmark_pretrain.py: arguments, equal maths on both sides, one tiny run.

No timing assertions: only that it runs and reports what it promises."""
import math
import os
import sys

import pytest
import torch

from tests.helpers.paths import ROOT

sys.path.insert(0, os.path.join(ROOT, 'tools', 'analysis'))
import benchmark_pretrain as bench  # noqa: E402

TINY = ['--arch', 'tiny', '--num-layers', '1', '--img-size', '32', '--batch-size', '2',
        '--hid-channels', '32', '--out-channels', '16', '--warmup', '0', '--iters', '1']


def test_cases_and_overrides():
    args = bench.parse_args(['--case', 'vit-s-224'])
    assert (args.arch, args.img_size, args.batch_size, args.device, args.amp) == \
        ('small', 224, 8, 'cpu', None)
    args = bench.parse_args(['--case', 'vit-s-512'])
    assert (args.img_size, args.device) == (512, 'cpu')
    args = bench.parse_args(['--case', 'vit-b-224-gpu'])
    assert (args.arch, args.batch_size, args.device, args.amp) == ('base', 64, 'cuda', 'bf16')
    args = bench.parse_args(['--case', 'vit-s-224', '--batch-size', '3', '--amp', 'none'])
    assert args.batch_size == 3 and args.amp is None
    with pytest.raises(SystemExit):
        bench.parse_args(['--img-size', '30'])
    with pytest.raises(SystemExit):
        bench.parse_args(['--case', 'vit-h'])


def test_both_implementations_compute_the_same_loss():
    """Same weights and batch: ours and the stock assembly give the same loss and grads."""
    args = bench.parse_args(TINY)
    device = bench.setup(args)
    ours, stock = bench.Trainer('ours', args, device), bench.Trainer('stock', args, device)
    student = {k: v for k, v in ours.model.state_dict().items() if not k.startswith('teacher.')}
    missing, unexpected = stock.model.load_state_dict(student, strict=False)
    assert not unexpected
    assert all(k.startswith('teacher.') for k in missing)
    loss_ours = ours.model.loss(ours.inputs, ours.samples)['loss']
    loss_stock = stock.model.loss(ours.inputs, ours.samples)['loss']
    torch.testing.assert_close(loss_ours, loss_stock, rtol=1e-5, atol=1e-5)
    loss_ours.backward()
    loss_stock.backward()
    stock_params = dict(stock.model.named_parameters())
    for name, param in ours.model.named_parameters():
        if param.grad is not None:
            scale = float(param.grad.abs().max()) + 1e-8  # fp32 rounding, relative
            diff = float((param.grad - stock_params[name].grad).abs().max())
            assert diff <= 1e-5 * scale + 1e-6, (name, diff, scale)


def test_one_tiny_run_prints_the_ratios(capsys, tmp_path):
    out = str(tmp_path / 'r.json')
    results = bench.main(TINY + ['--memory', 'none', '--json', out])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith('speedup=') and 'memory_ratio=' in lines[-1]
    assert results['speedup'] > 0 and os.path.exists(out)
    for name in ('ours', 'stock'):
        assert results[name]['img_per_s'] > 0 and math.isfinite(results[name]['loss'])


@pytest.mark.slow
def test_cpu_memory_probes_run_in_subprocesses():
    args = bench.parse_args(TINY)
    peaks = bench.cpu_peak_memory(args, TINY)
    assert set(peaks) == {'ours', 'stock'} and all(v > 0 for v in peaks.values())


def test_stock_side_is_conmim_built_from_stock_parts():
    """'Same algorithm' by construction: the stock side is ConMIM with stock mmpretrain parts."""
    from mmpretrain.models.selfsup.beit import BEiTPretrainViT
    from mmpretrain.models.utils import CosineEMA
    from conmim_mm.models import ConMIM, FusedCosineEMA
    args = bench.parse_args(TINY)
    stock, ours = bench.build_stock(args), bench.build_ours(args)
    assert type(stock) is ConMIM and type(ours) is ConMIM
    assert type(stock.backbone) is BEiTPretrainViT and type(stock.teacher) is CosineEMA
    assert type(ours.teacher) is FusedCosineEMA
    assert stock.state_dict().keys() == ours.state_dict().keys()


def test_stock_teacher_matches_the_fused_one_with_the_stock_buffer_rule(max_iters):
    """``stock_teacher`` puts mmpretrain's CosineEMA in place of the FusedCosineEMA teacher:
    same state-dict keys, and the same teacher after the same steps as FusedCosineEMA with
    mmengine's buffer rule (BatchNorm statistics copied from the student)."""
    from mmpretrain.models.utils import CosineEMA
    from mmpretrain.structures import DataSample

    from tests.helpers.tiny_models import build_conmim
    torch.manual_seed(0)
    fused = build_conmim()
    fused.teacher.keep_buffers = False
    stock = bench.stock_teacher(build_conmim())
    assert type(stock.teacher) is CosineEMA
    assert fused.state_dict().keys() == stock.state_dict().keys()
    stock.load_state_dict(fused.state_dict())
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(2, 3, 32, 32, generator=g) for _ in range(2)]
    samples = [DataSample().set_mask(torch.arange(16).view(4, 4) % 3 == 0) for _ in range(2)]
    for model in (fused, stock):
        for _ in range(2):
            model.loss(views, samples)
    for (name, a), b in zip(fused.teacher.state_dict().items(),
                            stock.teacher.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_size_table_is_conmim_vits_arch_zoo():
    from conmim_mm.models import ConMIMViT
    for arch in bench.ARCHS:
        args = bench.parse_args(['--arch', arch])
        assert bench.arch_settings(args) == ConMIMViT.arch_zoo[arch]
    args = bench.parse_args(['--arch', 'small', '--num-layers', '3'])
    assert bench.arch_settings(args)['num_layers'] == 3


@pytest.mark.slow
def test_runner_mode_times_the_training_command(tmp_path, capsys):
    """A tiny Runner run on synthetic ImageNet-layout JPEGs, through tools/train.py's config
    handling: images/s, data time and the step mode's FLOP count."""
    out = str(tmp_path / 'r.json')
    results = bench.main(TINY + ['--patch-size', '8', '--mode', 'runner', '--workers', '0',
                                 '--iters', '2', '--json', out])
    runner = results['runner']
    assert runner['iters_timed'] == 2 and runner['img_per_s'] > 0
    assert runner['data_time_s'] >= 0 and runner['tflops'] > 0
    assert runner['optim_wrapper'] == 'OptimWrapper'  # the CPU trains in fp32
    assert runner['compile'] is False  # no --compile: the config's compile=True is turned off
    assert results['flops_per_step'] > 0 and os.path.exists(out)
    assert 'runner:' in capsys.readouterr().out


def test_synthetic_jpegs_in_the_imagenet_layout(tmp_path):
    bench.write_jpegs(str(tmp_path), 5, n_classes=2)
    lines = (tmp_path / 'meta' / 'train.txt').read_text().split()
    assert len(lines) == 10 and lines[0].startswith('n00000000/') and lines[1] == '0'
    assert (tmp_path / 'train' / lines[2]).stat().st_size > 1000
