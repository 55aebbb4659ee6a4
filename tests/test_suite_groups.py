"""The suite's own scheduling (tools/run_tests.sh: pytest-xdist, ``--dist loadgroup``): a test
that shares a session-scoped fixture runs in that fixture's group, so the fixture is made once."""
import os

import pytest


def test_a_test_sharing_a_session_fixture_runs_in_its_group(request, tiny_pretraining_checkpoint):
    if not os.environ.get('PYTEST_XDIST_WORKER') or not request.config.getoption('loadgroup', False):
        pytest.skip('runs under tools/run_tests.sh (pytest-xdist, --dist loadgroup)')
    # pytest-xdist names the group in the test's id; a pytest it does not fit (9.2) drops it
    assert request.node.nodeid.endswith('@tiny_pretraining_checkpoint'), request.node.nodeid
