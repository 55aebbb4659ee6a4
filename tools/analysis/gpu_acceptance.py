"""The training command on one GPU, in one run: does it keep its promises there?

On the GPU machine (one H100/H200, fresh, holding the checkout and the wheels that
``bash tools/analysis/prepare_gpu_wheels.sh`` puts in ``.gpu/``), from the checkout root:

    source .gpu/env.sh && python tools/analysis/gpu_acceptance.py --out DIR     # < 8 minutes

and on any machine, every stage at toy size (a test runs it):

    python tools/analysis/gpu_acceptance.py --device cpu --tiny --out DIR        # < 3 minutes

``DIR/gpu_acceptance.json`` is written after every stage (a run stopped by its time limit keeps
what it measured). Its keys: ``device``, ``torch``; ``tests`` (the CUDA tests of the suite);
``teacher_view_compiled_equal`` (the compiled teacher view against the eager one);
``step`` (the training step alone, compiled, against the stock mmpretrain assembly: img/s, MFU,
peak memory, batch 64 and 128); ``command`` (tools/train.py's path on
``configs/pretrain/conmim_vit-b.py``: compile, bf16, views built on the device; img/s, MFU, peak
memory, ``data_time`` and the data preprocessor's share of the step); ``syncs_in_step``
(host synchronisations in 20 iterations of the command, counted by
``torch.cuda.set_sync_debug_mode('warn')``); ``graph_breaks`` and ``recompiles`` (dynamo's
counters over the command); ``two_view_command`` (the same with the CPU-views pipeline); and
``targets``.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, 'tools', 'analysis', 'benchmark_pretrain.py')
CUDA_TESTS = ['tests/engine/test_compile.py', 'tests/engine/test_reliability_divergence.py']

FULL = dict(sizes=['--case', 'vit-b-224-gpu'], batches=(64, 128), step_iters=(3, 10),
            command_iters=(10, 30), sync_iters=20, teacher_view=(64, 224), backend='inductor')
TINY = dict(sizes=['--device', 'cpu', '--amp', 'bf16', '--arch', 'tiny', '--num-layers', '1',
                   '--img-size', '32', '--patch-size', '8', '--hid-channels', '32',
                   '--out-channels', '16', '--memory', 'none'],
            batches=(2, 4), step_iters=(1, 2), command_iters=(1, 2), sync_iters=2,
            teacher_view=(4, 32), backend='aot_eager')
# What the command should reach on one H200 (docs/benchmarks.md).
TARGETS = dict(command_vs_step=0.95, command_img_per_s=1400, syncs_in_step=0, graph_breaks=0,
               preprocessor_share=0.03)


def load_bench():
    import importlib.util
    spec = importlib.util.spec_from_file_location('conmim_benchmark_pretrain', BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its JPEG writer's worker pool pickles its functions
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='folder for gpu_acceptance.json')
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    parser.add_argument('--tiny', action='store_true', help='every stage at toy size')
    parser.add_argument('--workers', type=int, help='dataloader workers of the command '
                        '(default: CPU cores - 2, at most 14; 0 with --tiny)')
    parser.add_argument('--skip', nargs='*', default=[], choices=STAGES,
                        help='stages to leave out')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and args.tiny:
        parser.error('--tiny is the CPU dry run: use it with --device cpu')
    return args


class Report:
    """The JSON, rewritten after every stage."""

    def __init__(self, out):
        os.makedirs(out, exist_ok=True)
        self.path = os.path.join(out, 'gpu_acceptance.json')
        self.data = {}

    def stage(self, name, fn, *args):
        start = time.perf_counter()
        print(f'=== {name} ({time.strftime("%H:%M:%S")})', flush=True)
        try:
            self.data.update(fn(*args))
            status = 'ok'
        except Exception as err:  # a failed stage is a result too; the others still run
            traceback.print_exc()
            status = f'failed: {type(err).__name__}: {err}'[:2000]
        self.data.setdefault('stages', {})[name] = dict(
            status=status, seconds=round(time.perf_counter() - start, 1))
        self.write()

    def write(self):
        with open(self.path + '.tmp', 'w') as f:
            json.dump(self.data, f, indent=2, default=str)
        os.replace(self.path + '.tmp', self.path)


def bench_args(bench, settings, batch, warmup, iters, workers, compile=True, extra=()):
    argv = [*settings['sizes'], '--batch-size', str(batch), '--warmup', str(warmup),
            '--iters', str(iters), *extra]
    if compile:
        argv += ['--compile', '--compile-backend', settings['backend']]
    if workers is not None:
        argv += ['--workers', str(workers)]
    return bench.parse_args(argv)


# stages ------------------------------------------------------------------------------------
def environment(args):
    import torch
    device = torch.cuda.get_device_name(0) if args.device == 'cuda' else \
        f'cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)'
    return dict(device=device, torch=torch.__version__, python=platform.python_version(),
                tiny=args.tiny)


def run_tests(args):
    """The suite's CUDA tests (skipped without a GPU), in a pytest process."""
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-k', 'cuda',
           *CUDA_TESTS]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=240)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return dict(tests=dict(command=' '.join(cmd[1:]), returncode=proc.returncode,
                           summary=lines[-1] if lines else '', tail=proc.stdout[-1500:]
                           + proc.stderr[-1500:]))


def teacher_view_equality(args, settings):
    """The teacher view compiled by inductor (as ``compile=True`` does) against eager, on
    the same crops and drawn parameters; and without the eager-rounding settings."""
    import numpy as np
    import torch
    from torch._inductor import config as inductor_config

    from conmim_mm.datasets import DrawTeacherPerturbations
    from conmim_mm.models.utils.data_preprocessor import EAGER_ROUNDING, ConMIMDataPreprocessor
    num, size = settings['teacher_view']
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (num, 3, size, size), generator=gen, dtype=torch.uint8)
    draw = DrawTeacherPerturbations(jitter_prob=0.8, brightness=0.4, contrast=0.4,
                                    saturation=0.2, hue=0.1, grayscale_prob=0.2, blur_prob=0.5,
                                    solarize_prob=0.2)
    np.random.seed(0)
    params = torch.stack([torch.from_numpy(draw(dict())['teacher_params']) for _ in range(num)])
    images, params = crops.to(device).float(), params.to(device).float()
    preprocessor = ConMIMDataPreprocessor().to(device)
    eager = preprocessor.teacher_view(images, params)
    torch._dynamo.reset()
    preprocessor.perturb = torch.compile(preprocessor.perturb)
    compiled = preprocessor.teacher_view(images, params)
    torch._dynamo.reset()
    plain = torch.compile(ConMIMDataPreprocessor().to(device).perturb)(images, params)
    differ = (compiled != eager).sum().item()
    result = dict(teacher_view_compiled_equal=differ == 0, teacher_view_pixels=eager.numel(),
                  teacher_view_differing_values=differ,
                  teacher_view_max_difference=(compiled - eager).abs().max().item(),
                  teacher_view_settings=EAGER_ROUNDING,
                  teacher_view_default_settings_differing_values=(plain != eager).sum().item())
    assert not inductor_config.emulate_precision_casts
    return result


def step(args, settings, bench):
    """The training step alone (ours compiled, stock eager), per batch size."""
    rows = {}
    for batch in settings['batches']:
        warmup, iters = settings['step_iters']
        results = bench.step_benchmark(
            bench_args(bench, settings, batch, warmup, iters, None), [])
        rows[f'b{batch}'] = {side: results.get(side) for side in ('ours', 'stock')}
        rows[f'b{batch}'].update(speedup=results.get('speedup'),
                                 flops_per_step=results.get('flops_per_step'))
        free_device_memory()
    return dict(step=rows)


def free_device_memory():
    import gc

    import torch
    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class PreprocessorTimer:
    """Times the data preprocessor in ``iters`` iterations after ``warmup`` (CUDA events:
    nothing waits in the step; read at the end)."""

    def __init__(self, warmup, iters):
        self.warmup, self.iters, self.times = warmup, iters, []

    def hook(self):
        from mmengine.hooks import Hook
        outer = self

        class _Hook(Hook):
            priority = 'LOWEST'

            def before_train(self, runner):
                preprocessor = runner.model.data_preprocessor
                forward = preprocessor.forward

                def timed(*args, **kwargs):
                    if outer.warmup <= runner.iter < outer.warmup + outer.iters:
                        start = outer._clock()
                        result = forward(*args, **kwargs)
                        outer.times.append((start, outer._clock()))
                        return result
                    return forward(*args, **kwargs)
                preprocessor.forward = timed

        return _Hook()

    @staticmethod
    def _clock():
        import torch
        if torch.cuda.is_available():
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def seconds(self):
        import torch
        if not self.times:
            return None
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            return sum(start.elapsed_time(end) for start, end in self.times) / 1e3
        return sum(end - start for start, end in self.times)


class SyncCounter:
    """A hook counting host synchronisations over ``count`` iterations from ``start``
    (``set_sync_debug_mode('warn')``: each one is a warning with its call site), the
    logging and checkpoint iterations left out."""

    def __init__(self, start, count):
        self.start, self.count, self.warnings, self.catcher = start, count, None, None

    def hook(self):
        import torch
        from mmengine.hooks import Hook
        outer = self

        class _Hook(Hook):
            priority = 'HIGHEST'

            def before_train_iter(self, runner, batch_idx, data_batch=None):
                if runner.iter == outer.start and torch.cuda.is_available():
                    torch.cuda.synchronize()
                    outer.catcher = warnings.catch_warnings(record=True)
                    outer.warnings = outer.catcher.__enter__()
                    warnings.simplefilter('always')
                    torch.cuda.set_sync_debug_mode('warn')
                elif runner.iter == outer.start + outer.count:
                    outer.stop()

            def after_train(self, runner):
                outer.stop()

        return _Hook()

    def stop(self):
        import torch
        if self.catcher is not None:
            torch.cuda.set_sync_debug_mode('default')
            self.catcher.__exit__(None, None, None)
            self.catcher = None

    def result(self):
        if self.warnings is None:
            return dict(syncs_in_step=None, syncs_in_step_note=(
                'needs CUDA (torch.cuda.set_sync_debug_mode); on the CPU '
                'tests/engine/test_gpu_discipline.py checks the calls that would synchronise'))
        syncs = [w for w in self.warnings if 'synchroniz' in str(w.message)]
        sites = sorted({f'{w.filename}:{w.lineno}' for w in syncs})
        return dict(syncs_in_step=len(syncs), syncs_in_step_iterations=self.count,
                    syncs_in_step_sites=sites[:20])


def command(args, settings, bench, config=None, key='command', watch=True):
    """tools/train.py's path on synthetic JPEGs, per batch size; dynamo's counters."""
    from torch._dynamo.utils import counters, guard_failures
    warmup, iters = settings['command_iters']
    sync_iters = settings['sync_iters'] if watch else 0
    prefix = '' if key == 'command' else f'{key}_'
    workers = args.workers if args.workers is not None else (0 if args.tiny else None)
    rows, extra = {}, {}
    for index, batch in enumerate(settings['batches'] if watch else settings['batches'][:1]):
        counters.clear()
        guard_failures.clear()
        opts = ['--cfg-options', 'default_hooks.logger.interval=100000']
        # the timed iterations, the watched ones, one more (the last one's log flush syncs)
        bench_cfg = bench_args(bench, settings, batch, warmup, iters + sync_iters + 1, workers,
                               extra=(['--config', config] if config else []) + opts)
        timer = PreprocessorTimer(warmup, iters)
        syncs = SyncCounter(warmup + iters, sync_iters)
        hooks = [timer.hook()] + ([syncs.hook()] if watch and index == 0 else [])
        result = bench.runner_benchmark(bench_cfg, bench.flops_per_step(bench_cfg), hooks=hooks)
        preprocessor = timer.seconds()
        if preprocessor is not None:
            result['preprocessor_s'] = preprocessor / iters
            result['preprocessor_share'] = result['preprocessor_s'] / result['step_s']
        rows[f'b{batch}'] = result
        if index == 0:
            if watch:
                extra.update(syncs.result())
            breaks = {str(reason): n for reason, n in counters['graph_break'].items()}
            recompiles = [str(r) for reasons in guard_failures.values() for r in reasons]
            extra.update({
                f'{prefix}graph_breaks': sum(breaks.values()),
                f'{prefix}graph_break_reasons': breaks,
                f'{prefix}recompiles': len(recompiles),
                f'{prefix}recompile_reasons': recompiles[:10],
                f'{prefix}unique_graphs': counters['stats']['unique_graphs']})
        free_device_memory()
    return {key: rows, **extra}


def two_view_command(args, settings, bench):
    """The command with the CPU-views pipeline (MultiView), for comparison."""
    path = os.path.join(os.path.abspath(args.out), 'conmim_vit-b_cpu-views.py')
    with open(path, 'w') as f:
        f.write(f"_base_ = {os.path.join(ROOT, 'configs', 'pretrain', 'conmim_vit-b.py')!r}\n"
                'train_dataloader = dict(dataset=dict(pipeline=_base_.cpu_views_pipeline))\n')
    return command(args, settings, bench, config=path, key='two_view_command', watch=False)


def targets(report):
    data = report.data
    try:
        first = next(iter(data['command']))
        run, compiled = data['command'][first], data['step'][first]['ours']
        values = dict(
            command_vs_step=run['img_per_s'] / compiled['img_per_s'],
            command_img_per_s=run['img_per_s'], syncs_in_step=data.get('syncs_in_step'),
            graph_breaks=data.get('graph_breaks'),
            preprocessor_share=run.get('preprocessor_share'))
    except (KeyError, StopIteration, TypeError, ZeroDivisionError):
        return dict(targets=None)
    met = {}
    for name, value in values.items():
        goal = TARGETS[name]
        if value is None:
            met[name] = None
        elif name in ('command_vs_step', 'command_img_per_s'):
            met[name] = value >= goal
        else:
            met[name] = value <= goal
    return dict(targets=dict(batch=first, goals=TARGETS, values=values, met=met))


STAGES = ('tests', 'teacher_view', 'step', 'command', 'two_view_command')


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, ROOT)
    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('No CUDA device: run it on the GPU machine, or use --device cpu --tiny.')
    import conmim_mm  # noqa: F401
    settings = TINY if args.tiny else FULL
    bench = load_bench()
    report = Report(args.out)
    report.data['command_line'] = 'python tools/analysis/gpu_acceptance.py ' + ' '.join(
        argv if argv is not None else sys.argv[1:])
    report.stage('environment', environment, args)
    stages = dict(tests=(run_tests, args), teacher_view=(teacher_view_equality, args, settings),
                  step=(step, args, settings, bench), command=(command, args, settings, bench),
                  two_view_command=(two_view_command, args, settings, bench))
    for name in STAGES:
        if name not in args.skip:
            report.stage(name, *stages[name])
    report.stage('targets', targets, report)
    print(json.dumps({k: v for k, v in report.data.items() if k not in ('tests', )},
                     indent=1, default=str)[:6000])
    print(f'wrote {report.path}')
    failed = [name for name, s in report.data['stages'].items() if s['status'] != 'ok']
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
