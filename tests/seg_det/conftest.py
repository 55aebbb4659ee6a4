import pytest

from tests.helpers.labelme import write_ade_layout


@pytest.fixture
def ade_layout(tmp_path):
    """labelme's 3 VOC photos as an ADE20K data root, ``tmp_path/ade`` (tests add files)."""
    return write_ade_layout(tmp_path / 'ade')
