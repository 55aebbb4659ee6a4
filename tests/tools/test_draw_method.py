"""tools/analysis/draw_method.py draws the README's method picture from nothing but matplotlib."""
import os
import runpy
import sys

from tests.helpers.paths import ROOT


def test_method_picture_is_drawn(tmp_path, monkeypatch):
    out = tmp_path / 'method.png'
    monkeypatch.setattr(sys, 'argv', ['draw_method.py', '--out', str(out)])
    runpy.run_path(os.path.join(ROOT, 'tools', 'analysis', 'draw_method.py'),
                   run_name='__main__')
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 20000
