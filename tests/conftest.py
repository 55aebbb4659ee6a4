import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import conmim_mm  # noqa: E402,F401  (registers the modules)


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
