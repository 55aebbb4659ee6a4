"""The GPU path of the training command, checked on the CPU.

``tools/train.py configs/pretrain/conmim_vit-b.py`` on GPUs compiles the loss, runs bf16
autocast, builds the teacher view on the device and runs the preemption and divergence hooks
on every rank. These tests run that path (the config's pipeline, preprocessor, AMP wrapper and
hooks, at toy size) under tests/helpers/device_discipline.py, which fails on what a GPU would
show: tensors made without a device, Python-list indices, host reads of device values and
host-to-device copies that grow with the batch.
"""
import os
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from mmengine.hooks import Hook
from mmpretrain.structures import DataSample

from tests.helpers.device_discipline import DeviceDiscipline, GraphRecorder, outside
from tests.helpers.paths import ROOT
from tests.helpers.tiny_models import TINY_VIT, build_conmim
from tests.helpers.tools import load_tool

BATCH = 4
WARMUP = 1  # the first iteration compiles and makes the optimiser state
WATCHED = 2


class FakeEvent:
    """The CUDA event of a pending host copy, already complete."""

    def synchronize(self):
        pass


class Window(Hook):
    """Opens the checked window before every other hook of an iteration (``open``) or closes
    it after all of them; the batch from the dataloader is host memory."""

    def __init__(self, mode, open):
        self.mode, self.open = mode, open
        self.priority = 'HIGHEST' if open else 'LOWEST'

    def before_train(self, runner):
        if self.open:  # after the optimiser wrapper is built; its state follows the weights
            self.mode.as_device(runner.model)
        else:  # after CompileModelHook: compiled methods run outside the mode
            model = runner.model
            for owner in (model, model.data_preprocessor):
                for name in getattr(owner, 'compile_methods', ()):
                    if name in vars(owner):
                        compiled = vars(owner)[name]
                        setattr(owner, name, self._outside_mode(compiled))

    def _outside_mode(self, compiled):
        def run(*args, **kwargs):
            with outside(self.mode):
                return self.mode.as_device(compiled(*args, **kwargs))
        return run

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.open:
            self.mode.as_host(data_batch)
            if WARMUP <= runner.iter < WARMUP + WATCHED:
                self.mode.window = True
                self.mode.watched = getattr(self.mode, 'watched', 0) + 1

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not self.open:
            self.mode.window = False


def run_command(tmp_path, compile_backend=None):
    """The ViT-B pretraining config at toy size (bf16 AMP wrapper, device views, the runtime
    hooks, world size 2 with a no-op all-reduce) under the discipline mode; returns the
    mode."""
    from mmengine.runner import Runner
    bench = load_tool('tools/analysis/benchmark_pretrain.py')
    argv = ['--device', 'cpu', '--amp', 'bf16', '--arch', 'tiny', '--num-layers', '1',
            '--img-size', '32', '--patch-size', '8', '--hid-channels', '32',
            '--out-channels', '16', '--batch-size', str(BATCH), '--workers', '0',
            '--warmup', str(WARMUP), '--iters', str(WATCHED + 1)]
    if compile_backend:
        argv += ['--compile', '--compile-backend', compile_backend]
    args = bench.parse_args(argv)
    bench.setup(args)
    data_root = str(tmp_path / 'imagenet')
    bench.write_jpegs(data_root, BATCH * (WARMUP + WATCHED + 1), n_classes=4)
    bench.register_timer_hook()
    cfg, _ = bench.runner_config(args, data_root, str(tmp_path / 'work_dir'))
    # what the recipe saves with (the benchmark saves nothing): the preemption check too
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=100)
    # What DeviceAmpOptimWrapper builds on a GPU with bf16 (mmengine's AmpOptimWrapper asks
    # for a GPU; its autocast is the CPU's here).
    cfg.optim_wrapper.update(type='AmpOptimWrapper', dtype='bfloat16',
                             loss_scale=dict(enabled=False))
    runner = Runner.from_cfg(cfg)
    mode = DeviceDiscipline()
    runner.register_hook(Window(mode, open=True))
    runner.register_hook(Window(mode, open=False))

    def host_copy(values):  # the CUDA path of start_host_copy: a copy the host reads later
        return mode.as_host(values.detach().clone()), FakeEvent()

    hooks = 'conmim_mm.engine.hooks'
    with mock.patch('mmengine.optim.optimizer.amp_optimizer_wrapper.is_cuda_available',
                    return_value=True), \
            mock.patch(f'{hooks}.preemption.get_world_size', return_value=2), \
            mock.patch(f'{hooks}.preemption.all_reduce'), \
            mock.patch(f'{hooks}.preemption.start_host_copy', host_copy), \
            mock.patch(f'{hooks}.divergence_guard_hook.get_world_size', return_value=2), \
            mock.patch(f'{hooks}.divergence_guard_hook.all_reduce'), \
            mock.patch(f'{hooks}.divergence_guard_hook.start_host_copy', host_copy), mode:
        runner.train()
    assert mode.watched == WATCHED
    assert type(runner.optim_wrapper).__name__ == 'AmpOptimWrapper'
    assert os.path.exists(tmp_path / 'work_dir' / 'epoch_1.pth')
    return mode


def assert_disciplined(mode):
    assert mode.violations == [], '\n'.join(f'{rule}: {call}' for rule, call in mode.violations)
    # crops, teacher parameters, masks, labels: one copy each, whatever the batch
    assert mode.copies / WATCHED <= 4, f'{mode.copies / WATCHED} host-to-device copies per step'
    assert mode.blocking_copies == 0


@pytest.mark.slow
def test_eager_training_command_needs_no_host_in_its_step(tmp_path):
    assert_disciplined(run_command(tmp_path))


@pytest.mark.slow
def test_compiled_training_command_needs_no_host_in_its_step(tmp_path):
    recorder = GraphRecorder()
    name = f'discipline_recorder_{id(recorder)}'  # a config names its backend by name
    torch._dynamo.register_backend(recorder, name=name)
    torch._dynamo.reset()
    mode = run_command(tmp_path, compile_backend=name)
    assert_disciplined(mode)
    assert len(recorder.graphs) >= 2  # the loss and the teacher view
    assert recorder.problems() == []


def test_graph_scan_finds_a_factory_without_device_and_a_list_index():
    """The scan itself: what it must find in a compiled function."""
    def step(x):
        return x[:, [2, 1, 0]] + torch.arange(3)

    recorder = GraphRecorder()
    torch._dynamo.reset()
    torch.compile(step, backend=recorder)(torch.ones(2, 3))
    problems = recorder.problems()
    assert any('factory without device: arange' in p for p in problems)
    assert any('list index' in p for p in problems)


def test_mode_finds_host_reads_list_indices_and_copies_per_sample():
    """The mode itself: each rule on a device tensor, none on host tensors."""
    mode = DeviceDiscipline()
    device_tensor = mode.as_device(torch.ones(3))
    with mode:
        host = mode.as_host(torch.ones(3))
        batch = [torch.ones(2) for _ in range(3)]  # host tensors (no device named)
        with mode.watching():
            bool(host.any())
            host.tolist()
            device_tensor.sum().item()
            device_tensor[[0, 1]]
            device_tensor[device_tensor > 0]
            torch.zeros(2)
            torch.tensor([1.], device='cpu')
            for tensor in batch:
                tensor.to('cpu', non_blocking=True)
    rules = [rule for rule, _ in mode.violations]
    assert rules == ['device value read on the host', 'index with a Python list',
                     'boolean-mask index (its size needs the host)',
                     'factory without an explicit device',
                     'tensor built from Python/numpy data (a blocking host copy)']
    assert mode.copies == 3 and mode.blocking_copies == 0


def test_relative_position_index_is_built_on_the_device_inside_compiled_code():
    """dynamo traces through ``lru_cache``: inside a graph the index must be made with the
    table's device, not on the host."""
    from conmim_mm.models.utils.relative_position import relative_position_bias
    table = torch.randn(7 * 7 + 3, 2)
    recorder = GraphRecorder()
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: relative_position_bias(t, (4, 4), (4, 4)),
                             backend=recorder)
    assert torch.equal(compiled(table), relative_position_bias(table, (4, 4), (4, 4)))
    assert recorder.problems() == []


def test_preemption_flag_is_made_on_the_device_without_host_data():
    from conmim_mm.engine.hooks.preemption import PreemptionSignals
    signals = PreemptionSignals()
    mode = DeviceDiscipline()
    hooks = 'conmim_mm.engine.hooks.preemption'
    with mock.patch(f'{hooks}.get_world_size', return_value=2), \
            mock.patch(f'{hooks}.all_reduce'), \
            mock.patch(f'{hooks}.start_host_copy',
                       lambda v: (mode.as_host(v.clone()), FakeEvent())), mode:
        with mode.watching():
            assert signals.agreed('cpu') is False  # read one iteration later
            signals.received = 'SIGTERM'
            assert signals.agreed('cpu') is False  # the previous iteration's flag
            assert signals.agreed('cpu') is True
    assert mode.violations == []


def two_view_batch(B=3):
    g = torch.Generator().manual_seed(0)
    views = [torch.randint(0, 256, (B, 3, 16, 16), generator=g, dtype=torch.uint8)
             for _ in range(2)]
    samples = [DataSample().set_mask(torch.rand(2, 2, generator=g) > 0.5).set_gt_label(i)
               for i in range(B)]
    return dict(inputs=views, data_samples=samples)


@pytest.mark.parametrize('to_rgb', [True, False])
def test_two_view_batches_normalised_as_selfsup_without_a_list_index(to_rgb):
    """The CPU-views pipeline's batches: the same views as mmpretrain's
    ``SelfSupDataPreprocessor`` (which indexes the channels with a Python list), channel
    flip instead of the index, one copy per view and per sample field."""
    from mmpretrain.registry import MODELS
    norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=to_rgb)
    ours = MODELS.build(dict(type='ConMIMDataPreprocessor', **norm))
    mode = DeviceDiscipline()
    mode.as_device(ours)
    stock = MODELS.build(dict(type='SelfSupDataPreprocessor', **norm))
    expected = stock(two_view_batch())
    with mode:
        batch = mode.as_host(two_view_batch())
        with mode.watching():
            got = ours(batch)
    assert mode.violations == []
    assert mode.copies == 2 + 2  # two views, the masks, the labels
    for a, b in zip(got['inputs'], expected['inputs']):
        assert torch.equal(a, b)
    for a, b in zip(got['data_samples'], expected['data_samples']):
        assert torch.equal(a.mask, b.mask) and torch.equal(a.gt_label, b.gt_label)


def test_samples_move_in_one_copy_per_field_whatever_the_batch():
    from conmim_mm.models.utils.data_preprocessor import samples_to_device
    for B in (2, 8):
        samples = two_view_batch(B)['data_samples']
        mode = DeviceDiscipline()
        with mode:
            mode.as_host(samples)
            with mode.watching():
                samples_to_device(samples, torch.device('cpu'), non_blocking=True)
        assert mode.copies == 2, B  # masks and labels
        assert [int(s.gt_label) for s in samples] == list(range(B))


def test_infonce_runs_in_fp32_under_bf16_autocast():
    """Under autocast the logits stay fp32 and equal the fp32 head's: bf16 logits at
    temperature 0.1 are off by up to ~0.04 and tie the accuracy's argmax."""
    from conmim_mm.models.heads import ConMIMHead
    head = ConMIMHead(temperature=0.1)
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 2, 49, 16, generator=g).unbind(0)
    mask = torch.rand(2, 49, generator=g) > 0.5
    logits, labels = head.logits_and_labels(pred, target, mask)
    loss, accuracy = head.loss_and_accuracy(pred, target, mask)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits_amp, labels_amp = head.logits_and_labels(pred, target, mask)
        loss_amp, accuracy_amp = head.loss_and_accuracy(pred, target, mask)
    assert logits_amp.dtype == torch.float32 and loss_amp.dtype == torch.float32
    assert torch.equal(logits_amp, logits) and torch.equal(labels_amp, labels)
    assert torch.equal(loss_amp, loss) and torch.equal(accuracy_amp, accuracy)


@pytest.mark.parametrize('config', ['conmim_vit-b.py', 'conmim_vit-l.py', 'conmim_vit-s.py'])
def test_contrastive_loss_with_the_configs_norm_layers_is_one_graph(config):
    """The loss as the config builds it for a distributed run (its ``sync_bn`` applied, as
    mmengine's Runner does when distributed) compiles as one graph."""
    from mmengine.config import Config
    from mmengine.model import convert_sync_batchnorm
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'pretrain', config))
    cfg.model.backbone.update(arch=TINY_VIT, img_size=32, patch_size=8)
    cfg.model.neck.update(in_channels=TINY_VIT['embed_dims'], hid_channels=32, out_channels=16)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    if cfg.get('sync_bn'):
        model = convert_sync_batchnorm(model, implementation=cfg.sync_bn)
    views = [torch.randn(2, 3, 32, 32) for _ in range(2)]
    mask = torch.rand(2, 16) > 0.5
    mask[:, 0] = True
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model.contrastive_loss)(*views, mask)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_compiled_teacher_view_is_generated_with_eager_rounding():
    """Inductor compiles the teacher view with FMA contraction off and IEEE division (what
    keeps Pillow's rounding); tools/analysis/gpu_acceptance.py compares it on the GPU."""
    from torch._inductor import config as inductor_config

    from conmim_mm.models.utils.data_preprocessor import EAGER_ROUNDING, ConMIMDataPreprocessor
    seen = []

    def perturb(images, params):
        seen.append({key: inductor_config.get_config_copy()[key] for key in EAGER_ROUNDING})
        return images

    preprocessor = ConMIMDataPreprocessor()
    preprocessor.perturb = perturb  # as CompileModelHook replaces it by the compiled one
    preprocessor.teacher_view(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1))
    assert seen == [EAGER_ROUNDING]
    assert not inductor_config.emulate_precision_casts  # only while the view runs


@pytest.mark.parametrize('config', ['conmim_vit-b.py', 'conmim_vit-l.py', 'conmim_vit-s.py'])
def test_projectors_keep_per_gpu_batchnorm_as_the_official_code(config):
    from mmengine.config import Config
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'pretrain', config))
    assert cfg.get('sync_bn') is None


def test_benchmark_makes_its_json_folder_and_refuses_profile_in_runner_mode(tmp_path):
    bench = load_tool('tools/analysis/benchmark_pretrain.py')
    out = tmp_path / 'results' / 'run.json'
    bench.parse_args(['--json', str(out)])
    assert out.parent.is_dir()  # made before the run, not after it
    with pytest.raises(SystemExit):
        bench.parse_args(['--mode', 'runner', '--profile', '5'])
