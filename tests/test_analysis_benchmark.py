"""tools/analysis/benchmark_pretrain.py: arguments, equal maths on both sides, one tiny run.

No timing assertions: only that it runs and reports what it promises."""
import math
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def test_cpu_memory_probes_run_in_subprocesses():
    args = bench.parse_args(TINY)
    peaks = bench.cpu_peak_memory(args, TINY)
    assert set(peaks) == {'ours', 'stock'} and all(v > 0 for v in peaks.values())
