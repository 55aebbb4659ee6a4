"""mmengine training checkpoints load under torch's safe (weights_only) unpickler."""
import io

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import conmim_mm  # noqa: F401  (allow-lists what mmengine checkpoints hold)


def roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf)  # weights_only=True is torch's default


def test_message_hub_state_loads_safely():
    hub = MessageHub.get_instance('conmim_test_hub')
    for value in (4.2, 3.9, 3.5):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', 3)
    state = roundtrip(dict(message_hub=hub.state_dict(), meta=dict(seed=0, arr=np.arange(3))))
    buffer = state['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx((4.2 + 3.9 + 3.5) / 3)
    assert state['message_hub']['runtime_info']['iter'] == 3


class FetchesAnAttribute:
    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


@pytest.mark.parametrize('owner,name', [(HistoryBuffer, '__init__'), (np.ndarray, 'tofile')])
def test_other_attributes_stay_refused(owner, name):
    with pytest.raises(Exception, match='only the statistics methods|not an allowed global'):
        roundtrip(dict(x=FetchesAnAttribute(owner, name)))


def test_arbitrary_code_stays_refused():
    class RunsCode:
        def __reduce__(self):
            return eval, ('1 + 1', )

    with pytest.raises(Exception, match='eval'):
        roundtrip(dict(x=RunsCode()))
