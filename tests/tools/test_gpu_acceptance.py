"""tools/analysis/gpu_acceptance.py: every stage at toy size on the CPU, with the keys of the
GPU run."""
import json

import pytest

from tests.helpers.tools import tool_main

KEYS = ('device', 'torch', 'tests', 'teacher_view_compiled_equal', 'step', 'command',
        'syncs_in_step', 'graph_breaks', 'recompiles', 'two_view_command', 'targets')


@pytest.mark.slow
def test_tiny_cpu_run_writes_every_key(tmp_path):
    status = tool_main('tools/analysis/gpu_acceptance.py', '--device', 'cpu', '--tiny',
                       '--out', tmp_path)
    report = json.loads((tmp_path / 'gpu_acceptance.json').read_text())
    assert status == 0, report['stages']
    assert all(stage['status'] == 'ok' for stage in report['stages'].values())
    assert set(KEYS) <= set(report)
    assert report['teacher_view_compiled_equal'] is True
    for batch in ('b2', 'b4'):
        assert report['step'][batch]['ours']['img_per_s'] > 0
        assert report['command'][batch]['img_per_s'] > 0
        assert 0 < report['command'][batch]['preprocessor_share'] < 1
    assert report['graph_breaks'] == 0 and report['recompiles'] == 0
    assert report['two_view_command']['b2']['img_per_s'] > 0
    assert report['tests']['returncode'] in (0, 5)  # the CUDA tests skip here


def test_refuses_tiny_on_the_gpu_and_a_missing_gpu(tmp_path):
    with pytest.raises(SystemExit):
        tool_main('tools/analysis/gpu_acceptance.py', '--tiny', '--out', tmp_path)
