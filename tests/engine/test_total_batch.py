"""The recipe's total batch on any cluster and schedules that end with the run
(conmim_mm/engine/recipe.py, loops.py)."""
import json
import os
import re

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.registry import PARAM_SCHEDULERS
from mmengine.runner import Runner

from conmim_mm.engine.hooks.optimizer_step_scheduler_hook import OptimizerStepParamSchedulerHook
from conmim_mm.engine.recipe import (ScheduleLengthError, TotalBatchError, resolve_schedule,
                                     resolve_total_batch)
from tests.helpers.paths import ROOT
from tests.helpers.runs import run_logs, tensors, train_with_tool

# --- the total batch, as a function of the cluster -------------------------------------------


def test_accumulation_reaches_the_recipe():
    total = resolve_total_batch(2048, processes=8, per_process=64)
    assert (total.accumulation, total.run, total.lr_scale) == (4, 2048, 1.0)
    assert total.describe().startswith(
        'total batch: recipe 2048, run 8 processes x 64 per process x 4 accumulation = 2048')
    assert resolve_total_batch(2048, 32, 64).accumulation == 1
    assert resolve_total_batch(None, 3, 7).describe().endswith('trained as configured')


def test_scale_lr_is_the_linear_rule():
    total = resolve_total_batch(2048, 8, 64, 'scale_lr')
    assert (total.accumulation, total.lr_scale) == (1, 0.25)
    assert 'learning rate scaled by 512/2048 = 0.25' in total.describe()


@pytest.mark.parametrize('processes,per_process,fix', [
    (6, 64, '--auto-scale-lr'),  # 2048 / 384: no whole accumulation
    (64, 64, 'train_dataloader.batch_size=32'),  # more than the recipe
])
def test_unreachable_recipe_names_both_fixes(processes, per_process, fix):
    with pytest.raises(TotalBatchError, match=re.escape(fix)) as err:
        resolve_total_batch(2048, processes, per_process)
    assert '--auto-scale-lr' in str(err.value) and str(processes * per_process) in str(err.value)


def test_error_policy_and_bad_arguments():
    with pytest.raises(TotalBatchError, match='batch_size=64.*x 4 accumulation.*auto-scale-lr'):
        resolve_total_batch(2048, 8, 64, 'error')
    assert resolve_total_batch(2048, 32, 64, 'error').accumulation == 1
    with pytest.raises(TotalBatchError, match='total_batch_policy'):
        resolve_total_batch(2048, 8, 64, 'sometimes')
    with pytest.raises(TotalBatchError, match='batch_size >= 1'):
        resolve_total_batch(2048, 8, 0)


# --- schedules that follow the run ------------------------------------------------------------

def lr_curve(schedulers, total_steps, epoch_length):
    """The learning rate (base 1) of every optimiser step under ``schedulers`` (mmengine's)."""
    param = nn.Parameter(torch.zeros(1))
    wrapper = OptimWrapper(torch.optim.SGD([param], lr=1.0))
    built = [PARAM_SCHEDULERS.build(dict(s), default_args=dict(optimizer=wrapper,
                                                               epoch_length=epoch_length))
             for s in schedulers]
    lrs = []
    for _ in range(total_steps):
        lrs.append(wrapper.get_lr()['lr'][0])
        for scheduler in built:
            if not scheduler.by_epoch:
                scheduler.step()
    return lrs


PRETRAIN_CONFIGS = ['conmim_vit-s.py', 'conmim_vit-b.py', 'conmim_vit-b_300e.py',
                    'conmim_vit-b_cpu-views.py', 'conmim_vit-l.py', 'conmim_vit-l_400e.py',
                    'conmim_vit-l_800e.py']


@pytest.mark.parametrize('name', PRETRAIN_CONFIGS)
def test_max_epochs_override_rescales_every_imagenet_schedule(name):
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/pretrain', name))
    cfg.merge_from_dict({'train_cfg.max_epochs': 7})
    warmup = cfg.param_scheduler[0]['end']
    spe = 40  # a short epoch keeps the curve cheap; the arithmetic is per step
    schedulers, changed = resolve_schedule(cfg.param_scheduler, 7 * spe, spe)
    assert changed and 'rescaled to end with the run' in changed
    assert max(s['end'] for s in schedulers if not s.get('by_epoch', True)) == 7 * spe
    # the warm-up keeps its epochs where the run is longer than them
    kept = schedulers[0]
    assert kept['end'] * (spe if kept.get('by_epoch', True) else 1) == min(warmup, 7) * spe \
        or warmup >= 7
    lrs = lr_curve(schedulers, 7 * spe + 1, spe)
    # the cosine ends with the run: its last step (mmengine's last value is one step short of
    # eta_min) is the lowest lr; unrescaled, the run would stop near the cosine's top
    assert lrs[-1] == min(lrs[len(lrs) // 2:]) and lrs[-1] < 2e-3
    assert max(lrs) == pytest.approx(1.0, rel=1e-3)


def test_schedule_rescale_keeps_the_warmup_and_refuses_unknown_lengths():
    schedule = [dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10,
                     convert_to_iter_based=True),
                dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=10, end=800,
                     convert_to_iter_based=True)]
    same, changed = resolve_schedule(schedule, 800 * 100, 100)
    assert changed is None and all(s['epoch_length'] == 100 for s in same)
    short, changed = resolve_schedule(schedule, 300 * 100, 100)
    assert short[0]['end'] == 10 and short[1]['begin'] == 1000 and short[1]['end'] == 30000
    assert 'the warm-up keeps its 10 epochs' in changed
    tiny, _ = resolve_schedule(schedule, 5 * 100, 100)  # shorter than the warm-up: all scaled
    assert tiny[0]['end'] == tiny[1]['begin'] and tiny[1]['end'] == 500
    with pytest.raises(ScheduleLengthError, match='rescale_schedule=False'):
        resolve_schedule(schedule, 300 * 100, 100, rescale=False)
    with pytest.raises(ScheduleLengthError, match='T_max'):
        resolve_schedule([dict(schedule[1], T_max=790)], 300 * 100, 100)
    steps = [dict(type='LinearLR', by_epoch=False, begin=0, end=1000),
             dict(type='MultiStepLR', by_epoch=True, begin=0, end=12, milestones=[8, 11])]
    longer, _ = resolve_schedule(steps, 24 * 100, 100)
    assert longer[0]['end'] == 1000 and longer[1]['milestones'] == [1600, 2200]


# --- the paper's rows ---------------------------------------------------------------------------

PAPER_ROWS = {  # config: (arch, epochs, warm-up epochs, lr at 2048, paper top-1)
    'conmim_vit-s.py': ('small', 300, 5, 5e-4, '82.0'),
    'conmim_vit-b_300e.py': ('base', 300, 10, 5e-4, '83.5'),
    'conmim_vit-b.py': ('base', 800, 10, 5e-4, '83.7'),
    'conmim_vit-l_400e.py': ('large', 400, 10, 7.5e-4, '84.6'),
    'conmim_vit-l_800e.py': ('large', 800, 10, 7.5e-4, '85.2'),
    'conmim_vit-l.py': ('large', 1600, 10, 7.5e-4, '85.5'),
}


@pytest.mark.parametrize('name', sorted(PAPER_ROWS))
def test_paper_row_configs(name):
    arch, epochs, warmup, lr, top1 = PAPER_ROWS[name]
    path = os.path.join(ROOT, 'configs/pretrain', name)
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.arch == arch and cfg.train_cfg.max_epochs == epochs
    assert cfg.train_cfg.type == 'RecipeEpochBasedTrainLoop'
    assert cfg.auto_scale_lr.base_batch_size == 2048 and cfg.optim_wrapper.optimizer.lr == lr
    schedulers, changed = resolve_schedule(cfg.param_scheduler, epochs * 10, 10)
    assert changed is None  # the schedule is the row's as written
    assert [(s['begin'], s['end']) for s in schedulers] == [(0, warmup), (warmup, epochs)]
    assert f'{top1} top-1' in open(path).read().split('\n_base_')[0]  # the header names it


def test_every_training_config_states_its_recipe_batch():
    names = [os.path.join(d, f) for d in ('pretrain', 'cls', 'seg', 'det')
             for f in sorted(os.listdir(os.path.join(ROOT, 'configs', d))) if f.endswith('.py')]
    for name in names:
        cfg = Config.fromfile(os.path.join(ROOT, 'configs', name))
        assert cfg.train_cfg.type in ('RecipeEpochBasedTrainLoop', 'RecipeIterBasedTrainLoop'), name
        assert cfg.auto_scale_lr.base_batch_size > 0 and not cfg.auto_scale_lr.get('enable'), name
        assert cfg.train_cfg.total_batch_policy == 'accumulate', name
    expected = {'seg/conmim_vit-b_upernet_ade20k.py': 16, 'det/conmim_vit-b_mask-rcnn_coco.py': 16,
                'det/conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py': 64,
                'cls/conmim_vit-b_ft_in1k.py': 1024}
    for name, batch in expected.items():
        assert Config.fromfile(os.path.join(ROOT, 'configs', name)).auto_scale_lr.base_batch_size \
            == batch


# --- the loops on a toy model (fast) ------------------------------------------------------------


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs).squeeze(-1)  # default_collate: batched tensors
        return dict(loss=((out - labels) ** 2).mean()) if mode == 'loss' else out


class ToyData(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        return dict(inputs=torch.tensor([float(index), 1.0]), labels=torch.tensor(0.5))


def toy_runner(tmp_path, train_cfg, base_batch, batch=2, **extra):
    return Runner(
        model=ToyModel(), work_dir=str(tmp_path), experiment_name=f'toy_{tmp_path.name}',
        train_dataloader=dict(dataset=ToyData(), batch_size=batch, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                              end=4)],
        train_cfg=train_cfg, auto_scale_lr=dict(base_batch_size=base_batch),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmengine', **extra)


def test_iteration_loop_counts_optimizer_steps(tmp_path):
    runner = toy_runner(tmp_path, dict(type='RecipeIterBasedTrainLoop', max_iters=4,
                                       val_interval=2), base_batch=6)
    steps = []
    original = torch.optim.SGD.step
    torch.optim.SGD.step = lambda self, *a, **k: (steps.append(1), original(self, *a, **k))[1]
    try:
        runner.train()
    finally:
        torch.optim.SGD.step = original
    assert runner.iter == 12 and len(steps) == 4  # 4 steps of 3 micro-batches
    assert runner.train_loop.val_interval == 6
    assert any(isinstance(h, OptimizerStepParamSchedulerHook) for h in runner.hooks)
    checkpoint = next(h for h in runner.hooks if type(h).__name__ == 'CheckpointHook')
    assert checkpoint.interval == 6
    scheduler = runner.param_schedulers[0]
    assert scheduler._global_step == 4  # stepped once per optimiser step, not 12 times
    assert sorted(os.listdir(tmp_path)).count('iter_6.pth') == 1
    assert 'total batch: recipe 6, run 1 processes x 2 per process x 3 accumulation = 6' \
        in run_logs(tmp_path)


def test_epoch_loop_ends_each_epoch_on_a_whole_step(tmp_path):
    # 5 batches of 2 per epoch, 2 micro-batches per step: 2 steps (4 batches) per epoch
    runner = toy_runner(tmp_path, dict(type='RecipeEpochBasedTrainLoop', max_epochs=2),
                        base_batch=4)
    runner.train()
    assert runner.train_loop.batches_per_epoch == 4 and runner.iter == 8
    assert runner.param_schedulers[0]._global_step == 4


def test_scale_lr_policy_scales_through_mmengine(tmp_path):
    runner = toy_runner(tmp_path, dict(type='RecipeEpochBasedTrainLoop', max_epochs=1,
                                       total_batch_policy='scale_lr'), base_batch=8)
    runner.train()
    assert runner.optim_wrapper.get_lr()['lr'][0] == pytest.approx(0.1 * 2 / 8)
    assert runner.optim_wrapper._accumulative_counts == 1


def test_unreachable_batch_stops_at_start(tmp_path):
    runner = toy_runner(tmp_path, dict(type='RecipeEpochBasedTrainLoop', max_epochs=1),
                        base_batch=5)
    with pytest.raises(TotalBatchError, match='--auto-scale-lr'):
        runner.train()


# --- the Fashion-MNIST recipe through tools/train.py ---------------------------------------------

FASHION = ['train_dataloader.dataset.indices=128', 'train_dataloader.num_workers=0',
           'train_cfg.max_epochs=2', 'model.backbone.arch.num_layers=2',
           'default_hooks.logger.interval=1', 'log_processor.window_size=1',
           # BatchNorm normalises each micro-batch by design (as each GPU in the recipe): the
           # projector's norms are LayerNorms here, so that the full batch and its
           # accumulation compute the same sums
           'model.neck.norm_cfg.type=LN', 'model.neck.with_last_bn=False',
           # and every image has 20 masked patches, so that a step's loss (the mean over its
           # masked patches) is exactly the mean of its micro-batches' (the block generator
           # masks 18 or 19 in ~3 % of its draws; each micro-batch is then averaged on its own,
           # as each GPU's batch in the official code, ~1e-4 away from the full batch's mean)
           'train_dataloader.dataset.pipeline.6.strategy=random',
           'train_dataloader.dataset.pipeline.6.mask_unit_size=4']


def scalars(work_dir):
    path = next(os.path.join(root, f) for root, _, files in os.walk(str(work_dir))
                for f in files if f == 'scalars.json')
    return [json.loads(line) for line in open(path)]


@pytest.fixture(scope='module')
def fashion_runs(tmp_path_factory, fashion_mnist):
    """The recipe (1 process x 64), a quarter of its batch by accumulation (16 x 4) and by the
    linear rule (--auto-scale-lr): 2 epochs of 128 images, 4 optimiser steps."""
    runs = {}
    for name, batch, args in (('full', 64, ()), ('accumulated', 16, ()),
                              ('scaled', 16, ('--auto-scale-lr', ))):
        work_dir = tmp_path_factory.mktemp(name)
        result = train_with_tool(work_dir, *FASHION, f'train_dataloader.batch_size={batch}',
                                 small=False, args=args)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = work_dir, result.stdout + result.stderr
    return runs


def test_accumulated_quarter_batch_trains_as_the_full_batch(fashion_runs):
    (full, full_log), (accumulated, acc_log) = fashion_runs['full'], fashion_runs['accumulated']
    assert 'total batch: recipe 64, run 1 processes x 64 per process x 1 accumulation = 64' \
        in full_log
    assert 'total batch: recipe 64, run 1 processes x 16 per process x 4 accumulation = 64' \
        in acc_log
    full_steps, acc_steps = scalars(full), scalars(accumulated)
    assert len(full_steps) == 4 and len(acc_steps) == 16
    for step, record in enumerate(full_steps):  # a step's loss: the mean of its micro-batches'
        micro = [r['loss'] for r in acc_steps[4 * step:4 * step + 4]]
        assert sum(micro) / 4 == pytest.approx(record['loss'], abs=2e-5)
        assert acc_steps[4 * step + 3]['lr'] == pytest.approx(record['lr'], rel=1e-6)
    a, b = tensors(full / 'epoch_2.pth'), tensors(accumulated / 'epoch_2.pth')
    assert a.keys() == b.keys()
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(b[key], a[key], atol=2e-5, rtol=1e-4, msg=key)
    assert int(b['teacher.steps']) == int(a['teacher.steps']) == 4  # one update per step


def test_scaled_quarter_batch_logs_the_linear_rule(fashion_runs):
    scaled, log = fashion_runs['scaled']
    assert 'total batch: recipe 64, run 1 processes x 16 per process x 1 accumulation = 16: ' \
           'learning rate scaled by 16/64 = 0.25' in log
    assert max(r['lr'] for r in scalars(scaled)) == pytest.approx(1e-3 * 0.25, rel=1e-3)


def test_two_cpu_processes_print_the_total_batch(tmp_path, fashion_mnist):
    result = train_with_tool(tmp_path, *FASHION[:2], 'train_cfg.max_epochs=1',
                             'model.backbone.arch.num_layers=1',
                             'train_dataloader.batch_size=16', nproc=2, small=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'total batch: recipe 64, run 2 processes x 16 per process x 2 accumulation = 64' \
        in run_logs(tmp_path)


def test_train_tool_auto_scale_lr_needs_a_recipe(tmp_path, fashion_mnist):
    config = tmp_path / 'no_recipe.py'
    config.write_text(f"_base_ = ['{ROOT}/configs/pretrain/conmim_vit-t-p4_fashion-mnist.py']\n"
                      "auto_scale_lr = dict(_delete_=True)\n")
    result = train_with_tool(tmp_path / 'w', 'train_cfg.max_epochs=1', config=config,
                             args=('--auto-scale-lr', ), small=False)
    assert result.returncode != 0 and 'states no recipe total batch' in result.stderr
