"""The launchers run the project's environment, as the README calls them (issue 8 §7).

``bash tools/dist_train.sh CONFIG 2`` used to call the ``python`` on PATH, which is not the
project's virtual environment ("No module named torch"). Here PATH's ``python``/``python3`` are
decoys that fail, and PYTHON is unset: the launchers must find ``.venv/bin/python`` themselves,
and use PYTHON when it is set.
"""
import os
import subprocess
import sys

import pytest

from tests.helpers.paths import ROOT

pytestmark = pytest.mark.slow  # each test starts a launcher (bash, and Python behind it)
VENV_PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
CONFIG = 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py'
needs_venv = pytest.mark.skipif(not os.path.exists(VENV_PYTHON),
                                reason='no .venv: the environment comes from tools/setup_env.sh')


def write_script(path, body):
    path.write_text('#!/usr/bin/env bash\n' + body)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def decoy_env(tmp_path):
    """A PATH whose python/python3 are not the project's, a recording srun, PYTHON unset."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name in ('python', 'python3'):
        write_script(bin_dir / name, 'echo "decoy $0: not the project environment" >&2; exit 3\n')
    write_script(bin_dir / 'srun', f'echo "$@" > {tmp_path}/srun_args\n')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHON', 'PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(PATH=f'{bin_dir}:/usr/bin:/bin', OMP_NUM_THREADS='1')
    return env


def launch(script, *args, env):
    return subprocess.run(['bash', f'tools/{script}', *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


@needs_venv
def test_dist_train_as_the_readme_writes_it(decoy_env, tmp_path, fashion_mnist):
    """A two-process CPU run (gloo) of one iteration per process and epoch."""
    proc = launch('dist_train.sh', CONFIG, 2, '--work-dir', tmp_path / 'work', '--cfg-options',
                  'train_dataloader.dataset.indices=32', 'train_dataloader.batch_size=16',
                  'auto_scale_lr.base_batch_size=32',  # 2 processes x 16
                  'train_dataloader.num_workers=0', 'train_cfg.max_epochs=2',
                  'param_scheduler.1.end=2', 'model.backbone.arch.num_layers=2',
                  env=dict(decoy_env, PORT='29517'))
    assert 'decoy' not in proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.exists(tmp_path / 'work' / 'epoch_2.pth')


@needs_venv
def test_dist_test_runs_the_project_python(decoy_env):
    proc = launch('dist_test.sh', CONFIG, 'ckpt.pth', 1, '--help',
                  env=dict(decoy_env, PORT='29518'))
    assert 'decoy' not in proc.stderr
    assert proc.returncode == 0 and '--non-strict' in proc.stdout, proc.stderr[-3000:]


@needs_venv
def test_slurm_train_runs_the_project_python(decoy_env, tmp_path):
    proc = launch('slurm_train.sh', 'gpu', 'job', CONFIG, '--amp', env=decoy_env)
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / 'srun_args').read_text().split()
    assert args[args.index('-u') - 1] == VENV_PYTHON
    assert args[-4:] == [CONFIG, '--launcher', 'slurm', '--amp']


@pytest.mark.parametrize('script,args', [
    ('dist_train.sh', [CONFIG, 2]),
    ('dist_test.sh', [CONFIG, 'ckpt.pth', 2]),
    ('slurm_train.sh', ['gpu', 'job', CONFIG]),
])
def test_launchers_honour_PYTHON(decoy_env, tmp_path, script, args):
    chosen = write_script(tmp_path / 'chosen_python', f'echo "$@" > {tmp_path}/python_args\n')
    proc = launch(script, *args, env=dict(decoy_env, PYTHON=chosen))
    assert proc.returncode == 0, proc.stderr
    assert CONFIG in (tmp_path / ('srun_args' if 'slurm' in script else 'python_args')).read_text()
    if 'slurm' in script:
        assert chosen in (tmp_path / 'srun_args').read_text()


@pytest.mark.parametrize('script,args', [
    ('dist_train.sh', [CONFIG, 2]),
    ('dist_test.sh', [CONFIG, 'ckpt.pth', 2]),
    ('slurm_train.sh', ['gpu', 'job', CONFIG]),
])
def test_launchers_never_put_the_launch_directory_on_the_path(decoy_env, tmp_path, script, args):
    """With PYTHONPATH unset, "$ROOT:${PYTHONPATH:-}" ended in an empty entry, which Python reads
    as the current directory: a mmengine.py where the job was launched shadowed mmengine."""
    launch_dir = tmp_path / 'launch'
    launch_dir.mkdir()
    (launch_dir / 'mmengine.py').write_text('raise SystemExit("the decoy mmengine.py ran")\n')
    record = f'echo "$PYTHONPATH" > {tmp_path}/pythonpath\n'
    write_script(tmp_path / 'bin' / 'srun', record)  # replaces the fixture's recording srun
    python = write_script(tmp_path / 'python_recorder', record)
    proc = subprocess.run(['bash', os.path.join(ROOT, 'tools', script), *map(str, args)],
                          cwd=launch_dir, capture_output=True, text=True, timeout=60,
                          env=dict(decoy_env, PYTHON=python))
    assert proc.returncode == 0, proc.stderr
    pythonpath = (tmp_path / 'pythonpath').read_text().strip()
    assert pythonpath.split(os.pathsep) == [ROOT]
    # What a worker sees with that PYTHONPATH: a script elsewhere importing mmengine.
    probe = tmp_path / 'probe' / 'worker.py'
    probe.parent.mkdir()
    probe.write_text('import mmengine\nprint(mmengine.__file__)\n')
    worker = subprocess.run([sys.executable, str(probe)], cwd=launch_dir, capture_output=True,
                            text=True, timeout=120, env=dict(decoy_env, PYTHONPATH=pythonpath))
    assert worker.returncode == 0 and 'decoy' not in worker.stderr, worker.stderr
    assert not worker.stdout.startswith(str(launch_dir))
