import math

import pytest
import torch
from mmpretrain.structures import DataSample

from tests.helpers.tiny_models import build_conmim


def batch(B=4, img_size=32, grid=4, num_masked=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    views = [torch.randn(B, 3, img_size, img_size, generator=g) for _ in range(2)]
    samples = []
    for _ in range(B):
        mask = torch.zeros(grid * grid, dtype=torch.long)
        mask[torch.randperm(grid * grid, generator=g)[:num_masked]] = 1
        samples.append(DataSample().set_mask(mask.view(grid, grid)))
    return views, samples


def student_params(model):
    return {k: v for k, v in model.named_parameters() if not k.startswith('teacher.')}


def test_teacher_equals_student_at_the_first_step(max_iters):
    model = build_conmim()
    different = [k for k, v in model.teacher.module.named_parameters()
                 if not torch.equal(v, student_params(model)[k])]
    assert different
    # init_weights ran after the teacher copy was made: they differ until the first step
    views, samples = batch()
    model.loss(views, samples)
    teacher = dict(model.teacher.module.named_parameters())
    for name, param in student_params(model).items():
        torch.testing.assert_close(teacher[name], param, msg=name)


def test_gradients_reach_the_student_only(max_iters):
    model = build_conmim()
    views, samples = batch()
    losses = model.loss(views, samples)
    assert torch.isfinite(losses['loss'])
    for key in losses:
        assert key == 'loss' or 'loss' not in key  # only `loss` is optimised
    losses['loss'].backward()
    for name, param in model.named_parameters():
        if name.startswith('teacher.'):
            assert not param.requires_grad and param.grad is None, name
        else:
            assert param.grad is not None, f'{name} gets no gradient'
    assert model.backbone.mask_token.grad.abs().sum() > 0


def test_teacher_moves_by_the_scheduled_momentum(max_iters):
    model = build_conmim()
    views, samples = batch()
    model.loss(views, samples)  # step 0: copy
    teacher_before = {k: v.clone() for k, v in model.teacher.module.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    optimizer.zero_grad()
    model.loss(views, samples)['loss'].backward()
    optimizer.step()
    student_after = {k: v.detach().clone() for k, v in student_params(model).items()}
    teacher_before_update = {k: v.clone() for k, v in model.teacher.module.named_parameters()}
    model.loss(views, samples)  # step 2: EMA towards the stepped student
    m = model.teacher.momentum_at(2)  # weight of the student
    expected_m = 0.004 * (math.cos(math.pi * 2 / max_iters) + 1) / 2
    assert m == pytest.approx(expected_m)
    for name, param in model.teacher.module.named_parameters():
        expected = (1 - m) * teacher_before_update[name] + m * student_after[name]
        torch.testing.assert_close(param, expected, msg=name)
    moved = [k for k, v in model.teacher.module.named_parameters()
             if not torch.equal(v, teacher_before[k])]
    assert moved, 'the teacher never moved'


def test_momentum_schedule_endpoints(max_iters):
    model = build_conmim()
    assert 1 - model.teacher.momentum_at(0) == pytest.approx(0.996)
    assert 1 - model.teacher.momentum_at(max_iters) == pytest.approx(1.0)
    mid = 1 - model.teacher.momentum_at(max_iters // 2)
    assert mid == pytest.approx(0.998)


def test_fused_ema_matches_mmpretrain_cosine_ema(max_iters):
    from mmpretrain.models.utils import CosineEMA
    from conmim_mm.models import FusedCosineEMA
    torch.manual_seed(0)
    src = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    fused, stock = FusedCosineEMA(src, 0.1, 0.), CosineEMA(src, 0.1, 0.)
    for _ in range(4):
        for p in src.parameters():
            p.data.add_(torch.randn_like(p))
        src(torch.randn(8, 4))  # moves the BatchNorm statistics (copied, not averaged)
        fused.update_parameters(src), stock.update_parameters(src)
    for a, b in zip(fused.module.state_dict().values(), stock.module.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_fused_ema_resumes_from_a_state_dict(max_iters):
    """The step count lives in a buffer; a reloaded average continues the same schedule."""
    from conmim_mm.models import FusedCosineEMA
    torch.manual_seed(0)
    src = torch.nn.Linear(4, 4)
    ema = FusedCosineEMA(src, 0.1, 0.)

    def perturb_and_update(target):
        torch.manual_seed(int(target.steps))
        for p in src.parameters():
            p.data.add_(torch.randn_like(p))
        target.update_parameters(src)

    for _ in range(3):
        perturb_and_update(ema)
    resumed = FusedCosineEMA(torch.nn.Linear(4, 4), 0.1, 0.)
    resumed.update_parameters(src)  # one step of its own, then the checkpoint overrides it
    resumed.load_state_dict(ema.state_dict())
    saved = {k: v.clone() for k, v in src.state_dict().items()}
    perturb_and_update(ema)
    src.load_state_dict(saved)
    perturb_and_update(resumed)
    assert int(resumed.steps) == int(ema.steps) == 4
    assert resumed.last_momentum == pytest.approx(ema.last_momentum)
    for a, b in zip(resumed.module.state_dict().values(), ema.module.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_train_step_and_extract_feat(max_iters):
    model = build_conmim()
    views, samples = batch()
    data = model.data_preprocessor(dict(inputs=views, data_samples=samples), True)
    losses = model(**data, mode='loss')
    assert set(losses) >= {'loss', 'acc_patch', 'ema_momentum'}
    feats = model(views[0], mode='tensor')
    assert feats[0].shape == (4, 17, 32)


def test_logged_momentum_is_the_students_weight_as_in_the_config(max_iters):
    """One convention for `momentum`: the student's weight (base_momentum=0.004 is a teacher
    coefficient of 0.996), in the config and in the log (`ema_momentum`)."""
    model = build_conmim(base_momentum=0.004)
    views, samples = batch()
    model.loss(views, samples)  # step 0 copies the student: weight 1
    losses = model.loss(views, samples)
    assert 'teacher_momentum' not in losses
    assert losses['ema_momentum'].item() == pytest.approx(model.teacher.momentum_at(1))
    assert losses['ema_momentum'].item() == pytest.approx(0.004, rel=1e-3)


def test_removed_teacher_ema_argument_says_what_to_do():
    with pytest.raises(TypeError, match='no longer takes `teacher_ema`.*replace `model.teacher`'):
        build_conmim(teacher_ema=dict(type='CosineEMA'))


def test_removed_masked_only_projector_says_why():
    """Issue 18: the ablation under the small-scale protocol showed no benefit, so the switch
    went; a config that still sets it is told so instead of training something else."""
    with pytest.raises(TypeError, match='no longer takes `project_masked_only`.*docs/results.md'):
        build_conmim(project_masked_only=True)
    with pytest.raises(TypeError, match=r"unexpected arguments \['base_momentun'\]"):
        build_conmim(base_momentun=0.01)


def test_teacher_keeps_its_own_batchnorm_statistics(max_iters):
    """As in the official code, the EMA averages the parameters only: the teacher's BatchNorm
    running statistics are its own, updated by its forward in train mode (never in eval
    mode) and never copied from the student after the first update."""
    torch.manual_seed(0)
    model = build_conmim()
    assert model.teacher.module.training
    views, samples = batch()
    model.loss(views, samples)  # step 0: the teacher copies everything
    student = dict(model._student().named_buffers())
    teacher = model.teacher.module
    for _ in range(2):
        before = {k: v.clone() for k, v in teacher.named_buffers()}
        params = {k: v.clone() for k, v in teacher.named_parameters()}
        with torch.no_grad():  # the student moves, then the EMA update alone
            for p in model._student().parameters():
                p.add_(0.01)
        model.teacher.update_parameters(model._student())
        assert any(not torch.equal(v, params[k]) for k, v in teacher.named_parameters())
        for name, buf in teacher.named_buffers():  # untouched by the update
            assert torch.equal(buf, before[name]), name
        model.loss(views, samples)  # the teacher's own forward moves its statistics
    bn = [k for k in student if k.endswith('running_mean')]
    assert bn
    buffers = dict(teacher.named_buffers())
    for name in bn:
        assert not torch.equal(buffers[name], before[name]), f'{name}: no teacher forward'
        assert not torch.equal(buffers[name], student[name]), f'{name}: copied'
    # the teacher's statistics are those of the teacher views it encoded
    neck_bn = teacher['neck'].bn0
    mean, momentum = before['neck.bn0.running_mean'], neck_bn.momentum
    with torch.no_grad():
        tokens = teacher['backbone'](views[1])[0]
        hidden = teacher['neck'].fc0(tokens.flatten(0, 1))
    expected = (1 - momentum) * mean + momentum * hidden.mean(0)
    torch.testing.assert_close(neck_bn.running_mean, expected)


def test_contrastive_loss_is_the_training_loss(max_iters):
    """``loss()`` = EMA update + ``contrastive_loss`` (the compiled part)."""
    torch.manual_seed(0)
    model = build_conmim()
    views, samples = batch()
    model.loss(views, samples)  # first update: the teacher copies the student
    mask = torch.stack([s.mask for s in samples]).flatten(1).bool()
    expected, _ = model.contrastive_loss(views[0], views[1], mask)
    got = model.loss(views, samples)['loss']  # the EMA moves the teacher by ~0 (same student)
    torch.testing.assert_close(got, expected)


def test_identical_patches_finds_exact_duplicates_only():
    from conmim_mm.models.algorithms.conmim import identical_patches
    images = torch.zeros(1, 3, 8, 8)
    images[0, :, 4:, 4:] = 1.0          # patch 3 differs from the three black ones
    images[0, 0, 0, 4] = 1e-6           # patch 1 differs from 0 and 2 by one tiny value
    same = identical_patches(images, 4)[0]
    assert same.tolist() == [[True, False, True, False], [False, True, False, False],
                             [True, False, True, False], [False, False, False, True]]
