"""The scripts the README and tools/demo.sh call exist in the repository and run."""
import glob
import os
import re
import subprocess

import pytest

from tests.helpers.paths import ROOT
from tests.helpers.tools import tool_fails, tool_main


def _tracked_files():
    try:
        out = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip('not a git checkout')
    return set(out.split())


def test_scripts_named_by_demo_and_readme_are_tracked():
    """A fresh clone must hold every tools/*.py|sh the entry points name (.gitignore once hid
    tools/data/)."""
    tracked = _tracked_files()
    named = set()
    docs = ['tools/demo.sh', 'README.md'] + sorted(
        os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
    for doc in docs:
        with open(os.path.join(ROOT, doc)) as f:
            # tools/ at the start of a path (not tests/tools/, the tests of the tools)
            named |= set(re.findall(r'(?<![\w/])tools/[\w/.-]+\.(?:py|sh)\b', f.read()))
    assert named, 'no tools/ script found in the docs'
    missing = sorted(path for path in named if path not in tracked)
    assert not missing, f'named in the docs but not in git: {missing}'


def test_prepare_fashion_mnist_script(tmp_path):
    out = tmp_path / 'fm'
    tool_main('tools/data/prepare_fashion_mnist.py', '--out', out)  # in this process
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    assert sizes['train-images-idx3-ubyte'] == 16 + 60000 * 28 * 28
    assert sizes['t10k-labels-idx1-ubyte'] == 8 + 10000

    stderr = tool_fails('tools/data/prepare_fashion_mnist.py', '--out', tmp_path / 'x',
                        '--src', tmp_path / 'nowhere')  # in this process
    assert 'apt-get install dataset-fashion-mnist' in stderr


def test_knn_checkpoints_gives_what_the_runs_monitor_logged(tmp_path, fashion_mnist):
    """tools/analysis/knn_checkpoints.py scores a saved checkpoint as the run's KNNMonitorHook
    scored the same weights at the end of that epoch."""
    import json
    from tests.helpers.runs import CONFIG, tiny_cfg, train_in_process
    cfg = tiny_cfg(tmp_path, epochs=2)
    sizes = dict(bank_dataloader=64, val_dataloader=32)
    monitor = dict(cfg.knn_monitor, encoder='teacher', **{
        key: dict(cfg.knn_monitor[key], dataset=dict(cfg.knn_monitor[key].dataset,
                                                     data_root=fashion_mnist, indices=images))
        for key, images in sizes.items()})
    cfg.custom_hooks = [*cfg.custom_hooks, monitor]
    runner = train_in_process(cfg)
    logged = runner.message_hub.get_info('knn_teacher_top1')
    rows = tool_main('tools/analysis/knn_checkpoints.py', CONFIG, tmp_path / 'epoch_2.pth',
                     '--bank-images', '64', '--val-images', '32', '--json', tmp_path / 'k.json',
                     '--cfg-options', 'model.backbone.arch.num_layers=2',
                     f'knn_monitor.bank_dataloader.dataset.data_root={fashion_mnist}',
                     f'knn_monitor.val_dataloader.dataset.data_root={fashion_mnist}')
    assert rows[0]['teacher_top1'] == pytest.approx(logged) and 'student_top1' in rows[0]
    assert json.loads((tmp_path / 'k.json').read_text()) == rows
