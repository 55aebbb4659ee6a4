"""mmengine training checkpoints load under torch's safe (weights_only) unpickler; the tools
load strictly (issue 8 §4)."""
import io
import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import conmim_mm  # noqa: F401  (allow-lists what mmengine checkpoints hold)
from tests.helpers.paths import ROOT
from tests.helpers.tools import load_tool, tool_fails


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


# --------------------------------------------------------------------------- strict evaluation
# tools/test.py and tools/train.py's load_from stop on a checkpoint that does not fit (issue 8 §4).
CLS_CONFIG = 'configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py'
PRETRAIN_CONFIG = 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py'
SMALL_TEST = ['model.backbone.arch.num_layers=2', 'test_dataloader.dataset.indices=16',
              'test_dataloader.batch_size=16', 'test_dataloader.num_workers=0']


def build_model(config, **arch):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(os.path.join(ROOT, config))
    cfg.model.backbone.arch.update(arch)
    cfg.model.backbone.init_cfg = None
    if cfg.model.get('neck'):
        cfg.model.neck.hid_channels = 32
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A fitting classifier, and three files that do not fit its 2-layer model."""
    root = tmp_path_factory.mktemp('strict')
    classifier = build_model(CLS_CONFIG, num_layers=2).state_dict()
    files = {
        'fits': classifier,
        'backbone-only': {k: v for k, v in classifier.items() if k.startswith('backbone.')},
        'pretraining': build_model(PRETRAIN_CONFIG, num_layers=2).state_dict(),
        'another depth': build_model(CLS_CONFIG, num_layers=3).state_dict(),
    }
    paths = {}
    for name, state in files.items():
        paths[name] = str(root / (name.replace(' ', '_') + '.pth'))
        torch.save({'state_dict': state, 'meta': {}}, paths[name])
    return paths


def run_test_tool(work_dir, checkpoint, *extra):
    tool = load_tool('tools/test.py')
    return tool.main([os.path.join(ROOT, CLS_CONFIG), checkpoint, '--work-dir', str(work_dir),
                      *extra, '--cfg-options', *SMALL_TEST])




@pytest.mark.slow
@pytest.mark.parametrize('kind,expected', [
    ('backbone-only', ['missing: head.fc.weight, head.fc.bias', 'backbone-only']),
    ('pretraining', ['unexpected: neck.', 'pretraining checkpoint']),
    ('another depth', ['unexpected: backbone.layers.2.']),
])
def test_evaluation_stops_on_a_checkpoint_that_does_not_fit(checkpoints, tmp_path, fashion_mnist,
                                                            kind, expected):
    with pytest.raises(SystemExit) as err:
        run_test_tool(tmp_path, checkpoints[kind])
    message = str(err.value.code)
    assert 'does not fit the model' in message and '--non-strict' in message
    for text in expected:
        assert text in message, message


@pytest.mark.slow
def test_evaluation_of_a_fitting_checkpoint_and_non_strict(checkpoints, tmp_path, fashion_mnist):
    metrics = run_test_tool(tmp_path / 'fits', checkpoints['fits'])
    assert 0 <= metrics['accuracy/top1'] <= 100
    metrics = run_test_tool(tmp_path / 'loose', checkpoints['backbone-only'], '--non-strict')
    assert 'accuracy/top1' in metrics


@pytest.mark.slow
def test_train_load_from_is_strict(checkpoints, tmp_path, fashion_mnist):
    stderr = tool_fails(  # tools/train.py in this process
        'tools/train.py', CLS_CONFIG, '--work-dir', str(tmp_path),
        '--cfg-options', 'model.backbone.arch.num_layers=2', 'model.backbone.init_cfg=None',
        f'load_from={checkpoints["another depth"]}', 'train_cfg.max_epochs=1',
        'train_dataloader.dataset.indices=16', 'train_dataloader.num_workers=0')
    assert 'does not fit the model' in stderr and 'backbone.layers.2.' in stderr
    assert not os.path.exists(os.path.join(str(tmp_path), 'epoch_1.pth'))


# --------------------------------------------------------------------------- issue 17 §4
# A damaged file is reported as damaged, a payload names the global it asked for; neither is
# told to load with weights_only=False.
class RunsShell:
    def __reduce__(self):
        return os.system, ('true', )


def damaged_files(root):
    whole = root / 'whole.pth'
    torch.save({'state_dict': {'w': torch.zeros(64, 64)}}, str(whole))
    data = whole.read_bytes()
    files = {
        'random bytes': np.random.default_rng(0).bytes(4096),
        'truncated': data[:len(data) // 2],
        'empty': b'',
        'npz': None,
    }
    paths = {}
    for name, content in files.items():
        paths[name] = root / (name.replace(' ', '_') + '.pth')
        if content is None:
            np.savez(str(paths[name]), w=np.zeros(3))
            os.replace(str(paths[name]) + '.npz', paths[name])
        else:
            paths[name].write_bytes(content)
    return paths


@pytest.mark.parametrize('kind,reason', [
    ('random bytes', 'damaged or not a PyTorch checkpoint'),
    ('truncated', 'it is truncated'),
    ('empty', 'the file is empty'),
    ('npz', 'NumPy .npz archive, not a PyTorch checkpoint'),
])
def test_damaged_files_are_reported_as_damaged(tmp_path, kind, reason):
    from mmengine.runner import CheckpointLoader

    from conmim_mm.engine import UnreadableCheckpointError
    path = damaged_files(tmp_path)[kind]
    with pytest.raises(UnreadableCheckpointError) as err:
        CheckpointLoader.load_checkpoint(str(path))
    message = str(err.value)
    assert str(path) in message and reason in message, message
    assert 'weights_only=False' not in message and 'not weights-only' not in message
    # through a tool: one line, no traceback
    tool = load_tool('tools/model_converters/extract_backbone.py')
    with pytest.raises(SystemExit) as stop:
        tool.main([str(path), str(tmp_path / 'out.pth')])
    assert reason in str(stop.value.code)


PROTOCOL_0_PAYLOAD = b"(i__builtin__\nopen\n(S'MARKER'\nS'w'\ntR."  # INST: calls open()


@pytest.mark.parametrize('payload,reason', [
    ('os.system', 'needs the global `posix.system`, that is `os.system`'),
    ('protocol 0', 'uses the pickle instruction INST'),
])
def test_payloads_are_refused_naming_what_they_ask_for(tmp_path, payload, reason):
    from mmengine.runner import CheckpointLoader

    from conmim_mm.engine import UnsafeCheckpointError
    path = tmp_path / 'payload.pth'
    if payload == 'os.system':
        torch.save({'state_dict': {}, 'meta': {'x': RunsShell()}}, str(path))
    else:
        path.write_bytes(PROTOCOL_0_PAYLOAD)
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(str(path))
    assert reason in str(err.value) and 'not weights-only' in str(err.value), str(err.value)
