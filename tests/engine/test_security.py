"""No checkpoint runs code, on any path (issue 8 §1).

A payload checkpoint creates a marker file when it is unpickled with ``weights_only=False``. It
is served by a loopback HTTP server, planted in the torch hub cache and written to local files,
then passed through every entry point: mmengine's ``CheckpointLoader`` (every scheme),
``tools/train.py`` (``init_cfg``, ``load_from``, ``--resume``), ``tools/test.py``, the converters
and ``tools/analysis/visualize.py``. The marker must never appear and the error must say why.
"""
import functools
import http.server
import os
import re
import sys
import threading
import types

import pytest
import torch
from mmengine.runner import CheckpointLoader, load_checkpoint
from mmengine.runner import checkpoint as mmengine_checkpoint

import conmim_mm  # noqa: F401  (registers the weights-only loaders)
from conmim_mm.engine import UnsafeCheckpointError
from conmim_mm.engine import checkpoint_loaders
from tests.helpers.paths import ROOT
from tests.helpers.runs import run_logs, train_in_process
from tests.helpers.tools import load_tool, tool_fails, tool_main

CLS_CONFIG = 'configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py'
PRETRAIN_CONFIG = os.path.join(ROOT, 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py')
SMALL_CLS = ['model.backbone.arch.num_layers=2', 'train_cfg.max_epochs=1',
             'train_dataloader.dataset.indices=16', 'train_dataloader.num_workers=0',
             'test_dataloader.dataset.indices=16', 'test_dataloader.num_workers=0',
             'val_dataloader.dataset.indices=16', 'val_dataloader.num_workers=0']
REFUSED = 'not weights-only'


class CreatesMarker:
    """Unpickled without weights_only, this opens (creates) the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


def save_payload(path, marker):
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': {'x': CreatesMarker(marker)}},
               str(path))
    return str(path)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(base URL of a loopback server over ``tmp_path/www``, marker path); a temporary
    TORCH_HOME keeps the real hub cache untouched."""
    www = tmp_path / 'www'
    www.mkdir()
    marker = tmp_path / 'PAYLOAD_RAN'
    save_payload(www / 'payload.pth', marker)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(QuietHandler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', marker
    finally:
        server.shutdown()
        server.server_close()
    assert not marker.exists(), 'a checkpoint ran code'


def assert_refused(text, marker):
    assert not marker.exists(), 'the payload ran'
    assert REFUSED in text and 'io.open' in text, text[-3000:]


# --------------------------------------------------------------------------- mmengine's API
def test_every_mmengine_scheme_is_weights_only():
    """mmengine registers its loaders at import; conmim_mm replaces each of them."""
    for prefix, loader in CheckpointLoader._schemes.items():
        assert loader.__module__ == checkpoint_loaders.__name__, (prefix, loader)
    for name in ('load_from_local', 'load_from_http', 'load_from_pavi', 'load_from_ceph',
                 'load_from_torchvision', 'load_from_openmmlab', 'load_from_mmcls'):
        mmengine_loader = getattr(mmengine_checkpoint, name)
        assert mmengine_loader not in CheckpointLoader._schemes.values(), name


def test_url_is_refused_by_checkpoint_loader_and_load_checkpoint(served):
    url, marker = served
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(f'{url}/payload.pth')
    assert_refused(str(err.value), marker)
    assert 're-save only its weights' in str(err.value)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(torch.nn.Linear(2, 2), f'{url}/payload.pth')
    assert not marker.exists()


def test_payload_planted_in_the_hub_cache_is_refused(served, tmp_path):
    url, marker = served
    cache = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    save_payload(cache / 'clean.pth', marker)  # the server has no clean.pth: the cache answers
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(f'{url}/clean.pth')
    assert_refused(str(err.value), marker)
    assert str(cache / 'clean.pth') in str(err.value)


def test_local_file_is_refused_even_when_torch_is_told_otherwise(served, tmp_path, monkeypatch):
    _, marker = served
    path = save_payload(tmp_path / 'local.pth', marker)
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')  # loosens torch.load's default
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(path)
    assert_refused(str(err.value), marker)


@pytest.mark.parametrize('name', ['open-mmlab://evil', 'openmmlab://evil', 'torchvision://evil',
                                  'modelzoo://evil', 'mmcls://evil'])
def test_named_model_schemes_resolve_to_weights_only_downloads(served, monkeypatch, name):
    url, marker = served
    urls = {'evil': f'{url}/payload.pth'}
    for resolver in ('get_external_models', 'get_torchvision_models', 'get_mmcls_models'):
        monkeypatch.setattr(mmengine_checkpoint, resolver, lambda: urls)
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(name)
    assert_refused(str(err.value), marker)


def test_object_store_schemes_load_weights_only(served, tmp_path, monkeypatch):
    url, marker = served
    payload = open(save_payload(tmp_path / 'obj.pth', marker), 'rb').read()
    monkeypatch.setattr(checkpoint_loaders, 'get_file_backend',
                        lambda *a, **k: types.SimpleNamespace(get=lambda name: payload))

    class Model:
        name = 'obj.pth'

        def download(self, path):
            with open(path, 'wb') as f:
                f.write(payload)

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda name: Model())
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    for name in ('s3://bucket/obj.pth', 'open-mmlab:s3://bucket/obj.pth',
                 'petrel://bucket/obj.pth', 'pavi://obj'):
        with pytest.raises(UnsafeCheckpointError) as err:
            CheckpointLoader.load_checkpoint(name)
        assert_refused(str(err.value), marker)


def test_weights_only_checkpoints_still_load(served, tmp_path):
    url, _ = served
    www = tmp_path / 'www'
    torch.save({'state_dict': {'weight': torch.ones(2, 2), 'bias': torch.zeros(2)}},
               str(www / 'good.pth'))
    model = torch.nn.Linear(2, 2)
    load_checkpoint(model, f'{url}/good.pth', strict=True)
    assert torch.equal(model.weight, torch.ones(2, 2))
    assert (tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'good.pth').exists()


# --------------------------------------------------------------------------- the tools
@pytest.mark.slow
@pytest.mark.parametrize('how', ['init_cfg', 'load_from', 'resume'])
def test_train_refuses_url_checkpoints(served, tmp_path, fashion_mnist, how):
    url, marker = served
    options = list(SMALL_CLS)
    args = []
    if how == 'init_cfg':
        options.append(f'model.backbone.init_cfg.checkpoint={url}/payload.pth')
    else:
        options.append('model.backbone.init_cfg=None')
        if how == 'load_from':
            options.append(f'load_from={url}/payload.pth')
        else:
            args = ['--resume', f'{url}/payload.pth']
    stderr = tool_fails('tools/train.py', CLS_CONFIG, '--work-dir', tmp_path / 'work', *args,
                        '--cfg-options', *options)  # in this process
    assert_refused(stderr, marker)


@pytest.mark.slow
def test_test_tool_refuses_a_url_checkpoint(served, tmp_path, fashion_mnist):
    url, marker = served
    stderr = tool_fails('tools/test.py', CLS_CONFIG, f'{url}/payload.pth', '--work-dir',
                        tmp_path / 'work', '--cfg-options', *SMALL_CLS)  # in this process
    assert_refused(stderr, marker)


@pytest.mark.parametrize('tool', ['tools/model_converters/extract_backbone.py',
                                  'tools/model_converters/beit_to_conmim.py'])
@pytest.mark.parametrize('where', ['url', 'local'])
def test_converters_refuse_payloads(served, tmp_path, capsys, tool, where):
    url, marker = served
    src = f'{url}/payload.pth' if where == 'url' else str(tmp_path / 'www' / 'payload.pth')
    with pytest.raises(SystemExit) as err:
        load_tool(tool).main([src, str(tmp_path / 'out.pth')])
    assert_refused(str(err.value.code), marker)
    assert not (tmp_path / 'out.pth').exists()


IMAGE = os.path.join(ROOT, 'docs', 'conmim_vis_fashion_mnist.png')


@pytest.mark.parametrize('where', ['url', 'local'])
def test_visualize_refuses_payloads(served, tmp_path, where):
    url, marker = served
    src = f'{url}/payload.pth' if where == 'url' else str(tmp_path / 'www' / 'payload.pth')
    with pytest.raises(SystemExit) as err:
        load_tool('tools/analysis/visualize.py').main(
            [IMAGE, src, '--config', PRETRAIN_CONFIG, '--out', str(tmp_path / 'vis.png')])
    assert_refused(str(err.value.code), marker)


# --------------------------------------------------------------------------- configs inside
def test_visualize_never_executes_the_config_stored_in_a_checkpoint(tmp_path, capsys):
    """A weights-only checkpoint whose meta.cfg is Python that would create the marker."""
    marker = tmp_path / 'CONFIG_RAN'
    path = str(tmp_path / 'crafted.pth')
    torch.save({'state_dict': {}, 'meta': {'cfg': f"x = open({str(marker)!r}, 'w')\n"}}, path)
    torch.load(path, weights_only=True)  # the file itself is harmless data
    visualize = load_tool('tools/analysis/visualize.py')
    with pytest.raises(SystemExit):
        visualize.main([IMAGE, path, '--out', str(tmp_path / 'vis.png')])
    assert '--config' in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        visualize.visualize(IMAGE, path, str(tmp_path / 'vis.png'))
    assert 'never executed' in str(err.value.code)
    assert not marker.exists()


@pytest.mark.slow
def test_resume_never_executes_the_config_text_of_a_checkpoint(tmp_path, fashion_mnist):
    """mmengine's Runner.resume passes meta['config'] to Config.fromstring (it executes it)."""
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(os.path.join(ROOT, CLS_CONFIG))
    cfg.model.backbone.arch.num_layers = 2
    cfg.model.backbone.init_cfg = None
    marker = tmp_path / 'CONFIG_RAN'
    path = str(tmp_path / 'crafted.pth')
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict(),
                'meta': {'epoch': 1, 'iter': 1, 'config': f"x = open({str(marker)!r}, 'w')\n"},
                'message_hub': MessageHub.get_instance('crafted').state_dict()}, path)
    torch.load(path, weights_only=True)  # the file itself is harmless data
    tool_main('tools/train.py', CLS_CONFIG, '--work-dir', tmp_path / 'work', '--resume', path,
              '--cfg-options', *SMALL_CLS, 'model.backbone.init_cfg=None')  # in this process
    assert not marker.exists(), 'the config text stored in the checkpoint was executed'
    assert 'never executed' in run_logs(tmp_path / 'work')


# --------------------------------------------------------------------------- issue 17 §2
# Config text stored in any of the three places mmengine and mmcv put it is never executed, on
# any path: mmdet's and mmseg's inferencers without a config, Runner.from_cfg with resume=True
# (mmpretrain's own tools/train.py and ours), FlexibleRunner.
CONFIG_KEYS = ['meta.cfg', 'meta.config', 'message_hub.cfg']


def config_payload(path, marker, key, state_dict=None):
    """A weights-only checkpoint whose config text (under ``key``) would create ``marker``."""
    from mmengine.logging import MessageHub
    text = f"import os\nopen({str(marker)!r}, 'w').close()\nmodel = dict(type='ResNet')\n"
    hub = MessageHub.get_instance(f'config_payload_{key}').state_dict()
    meta = dict(epoch=0, iter=0)
    if key == 'message_hub.cfg':
        hub['runtime_info']['cfg'] = text
        hub['resumed_keys']['cfg'] = True
    else:
        meta[key.split('.')[1]] = text
    torch.save(dict(state_dict=state_dict or {}, meta=meta, message_hub=hub), str(path))
    torch.load(str(path), weights_only=True)  # the file itself is harmless data
    return str(path)


@pytest.mark.parametrize('key', CONFIG_KEYS)
@pytest.mark.parametrize('inferencer', ['mmdet', 'mmseg'])
def test_inferencers_never_execute_the_config_text_of_a_checkpoint(tmp_path, inferencer, key):
    marker = tmp_path / 'CONFIG_RAN'
    path = config_payload(tmp_path / 'crafted.pth', marker, key)
    if inferencer == 'mmdet':
        from mmdet.apis import DetInferencer as Inferencer
    else:
        from mmseg.apis import MMSegInferencer as Inferencer
    with pytest.raises(Exception) as err:
        Inferencer(model=None, weights=path, device='cpu')
    assert not marker.exists(), 'the config text stored in the checkpoint was executed'
    from conmim_mm.engine import StoredConfigTextError
    if key == 'meta.config':  # dropped when loaded: mmengine finds no config at all
        assert 'Cannot find the config' in str(err.value)
    else:
        assert isinstance(err.value, StoredConfigTextError)
        assert 'never executed' in str(err.value) and 'model=CONFIG' in str(err.value)


@pytest.mark.slow
def test_runners_resume_without_executing_the_config_text_of_a_checkpoint(tmp_path,
                                                                          fashion_mnist):
    """Runner.from_cfg(cfg) with resume=True, as mmpretrain's tools/train.py calls it, then
    FlexibleRunner on the checkpoint it wrote: the payload in all three places at once each
    time; both resume, and the text is never written back into their checkpoints."""
    from mmengine.config import Config, DictAction
    from mmengine.registry import RUNNERS, DefaultScope
    from mmengine.runner import Runner
    from mmpretrain.registry import MODELS

    parser = __import__('argparse').ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    cfg = Config.fromfile(os.path.join(ROOT, CLS_CONFIG))
    cfg.merge_from_dict(parser.parse_args(['--o', *SMALL_CLS]).o)
    cfg.model.backbone.init_cfg = None
    cfg.update(val_cfg=None, val_dataloader=None, val_evaluator=None, resume=True)
    marker = tmp_path / 'CONFIG_RAN'
    path = str(tmp_path / 'crafted.pth')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        state_dict = MODELS.build(cfg.model).state_dict()
    config_payload(path, marker, 'message_hub.cfg', state_dict)
    work_dir = tmp_path / 'work'
    for epochs, runner_type in ((1, 'Runner'), (2, 'FlexibleRunner')):
        checkpoint = torch.load(path)
        text = f"import os\nopen({str(marker)!r}, 'w').close()\n"
        checkpoint['meta'].update(cfg=text, config=text)
        checkpoint['message_hub']['runtime_info']['cfg'] = text
        checkpoint['message_hub']['resumed_keys']['cfg'] = True
        torch.save(checkpoint, path)
        run_cfg = cfg.copy()
        run_cfg.update(work_dir=str(work_dir), load_from=path,
                       experiment_name=f'config_payload_{runner_type}')
        run_cfg.train_cfg.max_epochs = epochs
        if runner_type == 'FlexibleRunner':
            run_cfg.runner_type = 'FlexibleRunner'
            run_cfg.pop('model_wrapper_cfg', None)
            train_in_process(run_cfg, build=RUNNERS.build)
        else:
            train_in_process(run_cfg, build=Runner.from_cfg)
        assert not marker.exists(), f'{runner_type} executed the config text of a checkpoint'
        path = str(work_dir / f'epoch_{epochs}.pth')
        saved = torch.load(path)  # weights-only: plain data
        for stored in (saved['meta']['cfg'], saved['message_hub']['runtime_info']['cfg']):
            # the run's own config (formatted by yapf or not: tests/conftest.py)
            assert re.search(rf"work_dir ?= ?'{re.escape(str(work_dir))}'", stored), stored[-500:]
