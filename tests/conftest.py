import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import conmim_mm  # noqa: E402,F401  (registers the modules)

if os.environ.get('PYTEST_XDIST_WORKER'):
    # tools/run_tests.sh runs one pytest-xdist worker per core: one thread each, for the tests
    # in this process and for the tools they start (which read OMP_NUM_THREADS).
    import torch
    torch.set_num_threads(1)
    os.environ['OMP_NUM_THREADS'] = '1'


# mmengine formats a config's text with yapf each time a Runner starts (its log and the config it
# dumps) and each time it saves a checkpoint (the text goes into the checkpoint's meta): 0.2 s
# for a committed config, 2.5 s for the detection configs the tests write, about a fifth of the
# suite's time. In this process the text stays unformatted (the same dicts, the same Python);
# the tools the tests start as processes (tests/tools/test_demo_chain.py, test_launchers.py,
# tests/engine/test_train_e2e.py) format it as users' runs do.
import mmengine.config.config as _mmengine_config  # noqa: E402

_mmengine_config.FormatCode = lambda text, **_: (text, False)


def _shared_fixtures(item):
    """The module- and session-scoped fixtures of this test suite that ``item`` uses."""
    info = getattr(item, '_fixtureinfo', None)
    names = set()
    for name in getattr(item, 'fixturenames', ()):
        defs = info.name2fixturedefs.get(name) if info else None
        if defs and defs[-1].scope in ('module', 'session') and \
                defs[-1].func.__module__.startswith('tests.') and name not in CHEAP_TO_REPEAT:
            names.add(name)
    return names


# Shared fixtures that a worker may make again for itself (seconds, and safe in parallel).
CHEAP_TO_REPEAT = {'fashion_mnist'}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (``-n``): the tests that share a module- or session-scoped fixture
    (a tiny trained run, a ViT-B checkpoint) run on one worker, which makes it once; the slow
    tests are handed out first, so that no long test starts when the other worker has
    nothing left."""
    if not os.environ.get('PYTEST_XDIST_WORKER'):
        return
    parent = {}

    def root(name):
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    uses = [(item, _shared_fixtures(item)) for item in items]
    for _, names in uses:  # tests that use two shared fixtures join their groups
        names = sorted(names)
        for name in names[1:]:
            parent[root(name)] = root(names[0])
    for item, names in uses:
        if names:
            item.add_marker(pytest.mark.xdist_group(root(min(names))))
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)


@pytest.fixture(autouse=True)
def default_scope_of_the_test_alone():
    """mmengine's default scope is process-wide: a test that builds an mmseg or mmdet Runner or
    inferencer leaves 'mmseg' or 'mmdet' current, and later tests' mmpretrain builds miss. Each
    test gets back the scopes it started with (as DefaultScope.overwrite_default_scope does)."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict = saved


@pytest.fixture
def max_iters():
    """Give CosineEMA's schedule a length outside a Runner."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 100)
    yield 100
    hub.runtime_info.pop('max_iters', None)


@pytest.fixture(scope='session')
def fashion_mnist():
    from conmim_mm.datasets import prepare_fashion_mnist
    return prepare_fashion_mnist(os.path.join(ROOT, 'data', 'fashion_mnist'))


# ---------------------------------------------------------------------------------------------
# Tiny runs and checkpoints that several tests read: each is made once per session. They are
# shared, so a test that changes files copies what it needs into its own tmp_path first
# (tests.helpers.runs.copy_run).
@pytest.fixture(scope='session')
def pretrain_reference_run(tmp_path_factory, fashion_mnist):
    """The demo config at SMALL size through ``python tools/train.py``, uninterrupted: 3 epochs
    of 6 iterations, epoch_{1,2,3}.pth; the losses the resume tests must meet again."""
    from tests.helpers.runs import train_with_tool
    work_dir = tmp_path_factory.mktemp('pretrain_reference_run')
    proc = train_with_tool(work_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work_dir


@pytest.fixture(scope='session')
def tiny_reference_run(tmp_path_factory, fashion_mnist):
    """``tiny_cfg`` (2 layers, 2 epochs of 4 iterations: 64 images, batch 16) through
    ``Runner.from_cfg`` in this process: epoch_1.pth and epoch_2.pth."""
    from tests.helpers.runs import tiny_cfg, train_in_process
    work_dir = tmp_path_factory.mktemp('tiny_reference_run')
    train_in_process(tiny_cfg(work_dir))
    return work_dir


@pytest.fixture(scope='session')
def tiny_preempted_run(tmp_path_factory, fashion_mnist):
    """The same run, sent SIGUSR1 during iteration 6 (batch 2 of epoch 2): (work dir, the exit
    status it stopped with)."""
    from tests.helpers.runs import tiny_cfg, train_in_process
    work_dir = tmp_path_factory.mktemp('tiny_preempted_run')
    hooks = [dict(type='SignalDuringIterHook', iteration=6, signal='SIGUSR1')]
    with pytest.raises(SystemExit) as stop:
        train_in_process(tiny_cfg(work_dir, hooks=hooks))
    return work_dir, stop.value.code


@pytest.fixture(scope='session')
def tiny_pretraining_checkpoint(tmp_path_factory):
    """(path, model): a pretraining checkpoint of the TINY_TRANSFER architecture (student,
    teacher moved away from it, projectors), as training saves it."""
    from tests.helpers.tiny_models import TINY_TRANSFER, save_pretraining_checkpoint
    path = tmp_path_factory.mktemp('tiny_pretraining_checkpoint') / 'pretrain.pth'
    model = save_pretraining_checkpoint(path, arch=TINY_TRANSFER)
    return path, model


@pytest.fixture(scope='session')
def tiny_teacher_checkpoint(tiny_pretraining_checkpoint, tmp_path_factory):
    """Its teacher, extracted by tools/model_converters/extract_backbone.py (in this process)."""
    from tests.helpers.tools import tool_main
    src, _ = tiny_pretraining_checkpoint
    dst = tmp_path_factory.mktemp('tiny_teacher_checkpoint') / 'teacher.pth'
    tool_main('tools/model_converters/extract_backbone.py', src, dst)
    return dst
