"""Speed and memory of one ConMIM training step: this package against stock mmpretrain parts.

Both sides run the same algorithm on the same shapes: the student encodes the masked view
(mask token), the teacher (an EMA of backbone + projector) encodes the full view, every token
goes through the 3-layer projector, the intra-image InfoNCE is taken over the masked patches,
then backward, AdamW and the EMA update. What differs is only the implementation:

* ``ours``: ``ConMIM`` + ``ConMIMViT`` (SDPA attention) + ``FusedCosineEMA`` from ``conmim_mm``;
* ``stock``: mmpretrain's ``BEiTPretrainViT`` (explicit softmax attention), ``NonLinearNeck`` and
  ``CosineEMA``, with the same loss maths.

Timing alternates the two models in one process after warm-up, so both see the same machine
load. Peak memory: on the GPU ``torch.cuda.max_memory_allocated`` around the timed steps; on
the CPU each model trains in a fresh subprocess and the peak resident set size
(``ru_maxrss``) above the process's size after the imports is reported (model, gradients,
optimiser state and activations; the interpreter and libraries are excluded).

The last line printed is ``speedup=<x> memory_ratio=<y>`` (ours relative to stock: speedup is
the ratio of images/s, memory_ratio ours / stock).

Examples::

    python tools/analysis/benchmark_pretrain.py --case vit-s-224        # CPU, < 1 minute
    python tools/analysis/benchmark_pretrain.py --case vit-s-512        # CPU, 1024 tokens
    python tools/analysis/benchmark_pretrain.py --case vit-b-224-gpu    # CUDA, bf16, MFU
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# arch: (embed_dims, num_layers, num_heads, feedforward_channels)
ARCHS = {
    'tiny': (192, 12, 3, 768),
    'small': (384, 12, 6, 1536),
    'base': (768, 12, 12, 3072),
    'large': (1024, 24, 16, 4096),
}
CASES = {
    'vit-s-224': dict(arch='small', img_size=224, batch_size=8, device='cpu', amp=None,
                      warmup=1, iters=3),
    'vit-s-512': dict(arch='small', img_size=512, batch_size=2, device='cpu', amp=None,
                      warmup=1, iters=3),
    'vit-b-224-gpu': dict(arch='base', img_size=224, batch_size=64, device='cuda', amp='bf16',
                          warmup=5, iters=20),
}
# Dense bf16 tensor-core peak (FLOP/s) used for the model FLOP utilisation.
PEAK_FLOPS = {'H100': 989.4e12, 'H200': 989.4e12, 'A100': 312e12}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--case', choices=sorted(CASES), default='vit-s-224')
    parser.add_argument('--arch', choices=sorted(ARCHS), help='override the case')
    parser.add_argument('--num-layers', type=int, help='override the depth')
    parser.add_argument('--img-size', type=int)
    parser.add_argument('--patch-size', type=int, default=16)
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--hid-channels', type=int, default=4096, help='projector width')
    parser.add_argument('--out-channels', type=int, default=256, help='projector output')
    parser.add_argument('--mask-ratio', type=float, default=75 / 196)
    parser.add_argument('--device', choices=['cpu', 'cuda'])
    parser.add_argument('--amp', choices=['none', 'bf16', 'fp16'])
    parser.add_argument('--warmup', type=int, help='untimed steps per model')
    parser.add_argument('--iters', type=int, help='timed steps per model')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads')
    parser.add_argument('--checkpoint', action='store_true',
                        help='ours: activation checkpointing (ConMIMViT use_checkpoint)')
    parser.add_argument('--compile', action='store_true',
                        help='ours: torch.compile the student and teacher backbones')
    parser.add_argument('--fused-adamw', action=argparse.BooleanOptionalAction, default=True,
                        help="ours: AdamW(fused=True), as the pretraining configs set it "
                        "(stock keeps torch's default AdamW); --no-fused-adamw turns it off")
    parser.add_argument('--memory', choices=['auto', 'none'], default='auto',
                        help="'none' skips the peak-memory measurement")
    parser.add_argument('--peak-tflops', type=float, help='accelerator peak for the MFU')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the results to this JSON file')
    parser.add_argument('--profile', type=int, default=0, metavar='N',
                        help='after timing, profile 3 steps of ours and print its N most '
                        'expensive operators (self device time on a GPU, self CPU time '
                        'otherwise)')
    parser.add_argument('--probe', choices=['ours', 'stock'], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key, value in CASES[args.case].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.amp == 'none':
        args.amp = None
    if args.img_size % args.patch_size:
        parser.error('--img-size must be a multiple of --patch-size')
    return args


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# ---------------------------------------------------------------------------------------
# The two implementations
# ---------------------------------------------------------------------------------------
def backbone_kwargs(args):
    dims, layers, heads, ffn = ARCHS[args.arch]
    return dict(
        arch=dict(embed_dims=dims, num_layers=args.num_layers or layers, num_heads=heads,
                  feedforward_channels=ffn),
        img_size=args.img_size, patch_size=args.patch_size, out_type='raw', final_norm=True,
        layer_scale_init_value=0.1, use_abs_pos_emb=False, use_rel_pos_bias=False,
        use_shared_rel_pos_bias=True)


def neck_cfg(args):
    return dict(type='NonLinearNeck', in_channels=ARCHS[args.arch][0],
                hid_channels=args.hid_channels, out_channels=args.out_channels, num_layers=3,
                with_bias=False, with_last_bn=True, with_last_bn_affine=False,
                with_avg_pool=False, norm_cfg=dict(type='BN1d'))


def build_ours(args):
    import conmim_mm  # noqa: F401  (registers ConMIM)
    from mmpretrain.registry import MODELS
    model = MODELS.build(dict(
        type='ConMIM',
        backbone=dict(type='ConMIMViT', use_checkpoint=args.checkpoint, **backbone_kwargs(args)),
        neck=neck_cfg(args),
        head=dict(type='ConMIMHead', temperature=0.1),
        base_momentum=0.004, end_momentum=0.))
    model.init_weights()
    if args.compile:
        import torch
        model.backbone.compile()
        model.neck.compile()
        model.teacher.module['backbone'].compile()
        model.teacher.module['neck'].compile()
    return model


def build_stock(args):
    """ConMIM assembled from stock mmpretrain parts (explicit attention, per-tensor EMA)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from mmpretrain.models.necks import NonLinearNeck
    from mmpretrain.models.selfsup.beit import BEiTPretrainViT
    from mmpretrain.models.utils import CosineEMA

    class StockConMIM(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = BEiTPretrainViT(**backbone_kwargs(args))
            cfg = neck_cfg(args)
            cfg.pop('type')
            self.neck = NonLinearNeck(**cfg)
            self.backbone.init_weights()
            self.neck.init_weights()
            self.teacher = CosineEMA(self._student(), momentum=0.004, end_momentum=0.)

        def _student(self):
            return nn.ModuleDict(dict(backbone=self.backbone, neck=self.neck))

        @staticmethod
        def _encode(encoder, images, mask):
            tokens = encoder['backbone'](images, mask)[0]
            B, N, D = tokens.shape
            return encoder['neck']((tokens.reshape(B * N, D), ))[0].view(B, N, -1)[:, 1:]

        def loss(self, inputs, data_samples):
            student_view, teacher_view = inputs
            mask = torch.stack([s.mask for s in data_samples]).flatten(1).bool()
            pred = self._encode(self._student(), student_view, mask)
            with torch.no_grad():
                self.teacher.update_parameters(self._student())
                target = self._encode(self.teacher.module, teacher_view, None)
            # Same maths as ConMIMHead: cosine logits / tau per image, CE on masked rows.
            pred = F.normalize(pred.float(), dim=-1)
            target = F.normalize(target.float(), dim=-1)
            logits = torch.bmm(pred, target.transpose(1, 2)) / 0.1
            labels = torch.arange(pred.shape[1], device=pred.device).expand_as(mask)
            return dict(loss=F.cross_entropy(logits[mask], labels[mask]))

    return StockConMIM()


def make_batch(args, device):
    import torch
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(args.seed)
    B, S, P = args.batch_size, args.img_size, args.patch_size
    student = torch.randn(B, 3, S, S, generator=g).to(device)
    teacher = torch.randn(B, 3, S, S, generator=g).to(device)
    L = (S // P) ** 2
    n_mask = max(1, round(args.mask_ratio * L))
    samples = []
    for _ in range(B):
        mask = torch.zeros(L, dtype=torch.bool)
        mask[torch.randperm(L, generator=g)[:n_mask]] = True
        samples.append(DataSample().set_mask(mask.view(S // P, S // P).to(device)))
    return [student, teacher], samples


class Trainer:
    """One model, its AdamW and a ``step()`` that runs a full training iteration."""

    def __init__(self, name, args, device):
        import torch
        self.name, self.args, self.device = name, args, device
        self.model = (build_ours if name == 'ours' else build_stock)(args).to(device).train()
        kwargs = dict(lr=1e-4, betas=(0.9, 0.98), weight_decay=0.05)
        if name == 'ours' and args.fused_adamw:
            kwargs['fused'] = True
        params = [p for n, p in self.model.named_parameters()
                  if p.requires_grad and not n.startswith('teacher.')]
        self.optimizer = torch.optim.AdamW(params, **kwargs)
        self.inputs, self.samples = make_batch(args, device)
        self.amp_dtype = dict(bf16=torch.bfloat16, fp16=torch.float16).get(args.amp)
        self.scaler = torch.amp.GradScaler('cuda') if args.amp == 'fp16' else None
        self.last_loss = None

    def step(self):
        import torch
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            loss = self.model.loss(self.inputs, self.samples)['loss']
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.last_loss = loss.detach()

    def state_bytes(self):
        """Bytes this trainer holds between steps: weights, buffers, gradients, AdamW state,
        the batch."""
        tensors = list(self.model.parameters()) + list(self.model.buffers()) + self.inputs
        tensors += [p.grad for p in self.model.parameters() if p.grad is not None]
        tensors += [v for state in self.optimizer.state.values() for v in state.values()
                    if hasattr(v, 'nbytes')]
        seen, total = set(), 0
        for t in tensors:
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.nbytes
        return total


def setup(args):
    import torch
    from mmengine.logging import MessageHub
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    MessageHub.get_current_instance().update_info('max_iters', 10000)  # the EMA schedule
    device = torch.device(args.device)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise SystemExit('This case needs a CUDA device; none is available.')
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def sync(device):
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------
def probe_memory(args):
    """(Subprocess) peak RSS of two training steps above the post-import baseline."""
    import torch  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import conmim_mm  # noqa: F401
    device = setup(args)
    base = rss_bytes()
    trainer = Trainer(args.probe, args, device)
    for _ in range(2):  # the second step holds AdamW state and activations at once
        trainer.step()
    print(json.dumps(dict(peak_bytes=peak_rss_bytes() - base,
                          loss=float(trainer.last_loss))))


def cpu_peak_memory(args, argv):
    """Run the two probes (one per implementation) side by side in fresh interpreters."""
    procs = {}
    for name in ('ours', 'stock'):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
        procs[name] = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *argv, '--probe', name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    peaks = {}
    for name, proc in procs.items():
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f'memory probe for {name} failed:\n{err[-3000:]}')
        peaks[name] = json.loads(out.strip().splitlines()[-1])['peak_bytes']
    return peaks


def count_flops(trainer):
    """FLOPs of one training step (forward + backward; the optimiser and EMA are ignored)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.step()
    return counter.get_total_flops()


def profile_steps(trainer, device, top):
    """Where one of our training steps spends its time, operator by operator."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for _ in range(3):
            trainer.step()
        sync(device)
    key = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    print(f'--- profile of 3 steps of {trainer.name} (top {top} by {key}) ---')
    print(prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=60))


def peak_flops(args, device):
    import torch
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_FLOPS.items():
        if key in name:
            return value
    return None


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.probe:
        return probe_memory(args)

    import torch
    device = setup(args)
    peaks = None
    if args.memory != 'none' and device.type == 'cpu':
        peaks = cpu_peak_memory(args, argv)  # before timing, so it does not load the cores

    trainers = [Trainer(name, args, device) for name in ('ours', 'stock')]
    for trainer in trainers:
        for _ in range(args.warmup):
            trainer.step()
    sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)

    times = {t.name: [] for t in trainers}
    gpu_peaks = {}
    for i in range(args.iters):
        order = trainers if i % 2 == 0 else trainers[::-1]  # alternate who goes first
        for trainer in order:
            if device.type == 'cuda':
                sync(device)
                before = torch.cuda.memory_allocated(device)
                own = trainer.state_bytes()
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            trainer.step()
            sync(device)
            times[trainer.name].append(time.perf_counter() - start)
            if device.type == 'cuda':
                # This model's own peak: what it holds plus its step's transient memory (the
                # other model, resident in the same process, is left out).
                gpu_peaks[trainer.name] = max(
                    gpu_peaks.get(trainer.name, 0),
                    torch.cuda.max_memory_allocated(device) - before + own)
    if device.type == 'cuda':
        peaks = gpu_peaks

    results = dict(case=args.case, device=str(device), arch=args.arch,
                   num_layers=args.num_layers or ARCHS[args.arch][1], img_size=args.img_size,
                   batch_size=args.batch_size, amp=args.amp, iters=args.iters,
                   torch=torch.__version__, threads=torch.get_num_threads(),
                   checkpoint=args.checkpoint, compile=args.compile,
                   fused_adamw=args.fused_adamw)
    for trainer in trainers:
        step = sorted(times[trainer.name])[len(times[trainer.name]) // 2]  # median
        results[trainer.name] = dict(
            step_s=step, img_per_s=args.batch_size / step,
            loss=float(trainer.last_loss),
            peak_mib=None if peaks is None else peaks[trainer.name] / 2**20)
        print(f'{trainer.name:>5}: {args.batch_size / step:8.2f} img/s  '
              f'(median step {step * 1000:.0f} ms over {args.iters})'
              + ('' if peaks is None else f'  peak memory {peaks[trainer.name] / 2**20:.0f} MiB'))

    if device.type == 'cuda':
        flops = count_flops(trainers[1])  # stock: the same maths, never compiled
        peak = peak_flops(args, device)
        for trainer in trainers:
            achieved = flops / results[trainer.name]['step_s']
            results[trainer.name]['tflops'] = achieved / 1e12
            results[trainer.name]['mfu'] = None if peak is None else achieved / peak
            print(f'{trainer.name:>5}: {achieved / 1e12:.1f} TFLOP/s'
                  + ('' if peak is None else f'  MFU {100 * achieved / peak:.1f}%'))
        results['flops_per_step'] = flops
        results['gpu'] = torch.cuda.get_device_name(device)

    if args.profile:
        profile_steps(trainers[0], device, args.profile)

    speedup = results['ours']['img_per_s'] / results['stock']['img_per_s']
    ratio = None if peaks is None else peaks['ours'] / peaks['stock']
    results.update(speedup=speedup, memory_ratio=ratio)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    print(f'speedup={speedup:.2f} memory_ratio=' + ('nan' if ratio is None else f'{ratio:.2f}'))
    return results


if __name__ == '__main__':
    sys.path.insert(0, ROOT)
    main()
