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
