"""The README's demo, as a new user runs it: `bash tools/demo.sh` (ConMIM pretraining), then
the two commands of the README that extract the teacher and fine-tune + evaluate it on
Fashion-MNIST. The commands are read from README.md and tools/demo.sh (so the test breaks when
they drift) and run as written, in a scratch copy of the checkout, with only size-shrinking
--cfg-options appended (fewer images and iterations); the architecture is never overridden."""
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.helpers.paths import ROOT

PYTHON = '.venv/bin/python'
# size only: the pretraining keeps its 3 epochs (the README names epoch_3.pth)
SHRINK_PRETRAIN = ['train_dataloader.dataset.indices=128', 'train_dataloader.num_workers=0',
                   'default_hooks.logger.interval=1',
                   'custom_hooks.1.bank_dataloader.dataset.indices=100',
                   'custom_hooks.1.val_dataloader.dataset.indices=50']
SHRINK_FINETUNE = ['train_dataloader.dataset.indices=256', 'train_dataloader.num_workers=0',
                   'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                   'val_dataloader.dataset.indices=500', 'test_dataloader.dataset.indices=500',
                   'default_hooks.logger.interval=1']


def readme_demo_commands():
    """The Python commands of the README's demo section, in order."""
    text = open(os.path.join(ROOT, 'README.md')).read()
    section = text[text.index('## The two commands'):text.index('\n## ', text.index(
        '## The two commands') + 1)]
    blocks = re.findall(r'```bash\n(.*?)```', section, re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines()
            if line.startswith(PYTHON + ' ')]


def demo_sh_command():
    """What tools/demo.sh runs after setting up the environment and the data."""
    lines = [line for line in open(os.path.join(ROOT, 'tools', 'demo.sh')).read().splitlines()
             if line.startswith('exec ')]
    assert len(lines) == 1, lines
    return [arg for arg in shlex.split(lines[0])[1:] if arg != '$@']


def run(cwd, argv, extra=()):
    assert argv[0] == PYTHON, argv
    cmd = [sys.executable, *argv[1:], *extra]  # .venv/bin/python, or this test's interpreter
    env = dict(os.environ, PYTHONPATH=str(cwd),
               OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'))
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{shlex.join(argv)} failed:\n{out[-4000:]}'
    return out


@pytest.fixture
def checkout(tmp_path, fashion_mnist):
    """A scratch checkout: the commands write work_dirs/ there, not into the real one."""
    for name in ('configs', 'tools', 'conmim_mm', 'data'):
        (tmp_path / name).symlink_to(os.path.join(ROOT, name))
    return tmp_path


def test_readme_names_the_demo_commands():
    plot, extract, finetune_random, finetune = readme_demo_commands()
    assert plot[1] == 'tools/analysis/plot_curves.py'
    assert extract[1] == 'tools/model_converters/extract_backbone.py'
    for cmd in (finetune_random, finetune):
        assert cmd[1:3] == ['tools/train.py', 'configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py']
        assert cmd[-2] == '--cfg-options'
    # the paired run differs only in its weights (and where it writes)
    assert finetune_random[-1] == 'model.backbone.init_cfg=None'
    assert finetune_random[3:5] == ['--work-dir', finetune[4] + '_random']
    # the teacher the extraction writes is the checkpoint the fine-tuning loads
    assert finetune[-1] == f'model.backbone.init_cfg.checkpoint={extract[3]}'


@pytest.mark.slow
def test_demo_pretraining_teacher_fine_tunes_and_evaluates(checkout):
    pretrain = demo_sh_command()
    assert pretrain[:3] == [PYTHON, 'tools/train.py',
                            'configs/pretrain/conmim_vit-t-p4_fashion-mnist_demo.py']
    out = run(checkout, pretrain, ['--cfg-options', *SHRINK_PRETRAIN])
    assert len(re.findall(r'kNN \(k=20, teacher', out)) == 4  # before training + 3 epochs
    plot, extract, finetune_random, finetune = readme_demo_commands()
    assert os.path.exists(checkout / extract[2]), 'the demo does not end where the README says'
    run(checkout, plot)
    assert os.path.getsize(checkout / plot[plot.index('--out') + 1]) > 10000
    run(checkout, extract)
    top1 = {}
    for name, cmd in (('random', finetune_random), ('teacher', finetune)):
        out = run(checkout, cmd, SHRINK_FINETUNE)  # appended to the README's --cfg-options
        assert 'missing keys' not in out and 'unexpected keys' not in out
        if name == 'teacher':
            assert 'Loaded' in out and 'teacher.pth' in out  # the strict loader took it
        else:
            assert 'teacher.pth' not in out
        accuracy = re.findall(r'accuracy/top1: ([\d.]+)', out)
        assert accuracy, out[-3000:]
        top1[name] = float(accuracy[-1])
        assert 0 <= top1[name] <= 100
    print(f'demo chain (shrunk): test top-1 {top1}')
