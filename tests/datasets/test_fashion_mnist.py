"""Preparing the embedded Fashion-MNIST: several processes may prepare one folder at once (the
test workers, one job per node of a cluster) and every file they leave is whole."""
import gzip
import multiprocessing

from conmim_mm.datasets import fashion_mnist


def _fake_debian_package(root):
    """The four gzipped idx files, small, with contents that tell them apart."""
    root.mkdir()
    contents = {name: bytes([i]) * (70000 + 1000 * i) for i, name in enumerate(fashion_mnist.FILES)}
    for name, data in contents.items():
        with gzip.open(root / f'{name}.gz', 'wb') as f:
            f.write(data)
    return contents


def test_another_process_preparing_the_same_folder_meanwhile(tmp_path, monkeypatch):
    """A second process prepares the folder from start to end while this one is half-way
    through its first file. Both must end well, with every file whole; the old shared
    ``<file>.part`` name made the slower one fail to rename it (FileNotFoundError)."""
    src, dst = tmp_path / 'debian', tmp_path / 'fashion_mnist'
    contents = _fake_debian_package(src)
    copy = fashion_mnist.shutil.copyfileobj
    other = []

    def half_then_another_process(fin, fout):
        if not other:
            fout.write(fin.read(1000))
            child = multiprocessing.get_context('fork').Process(
                target=fashion_mnist.prepare_fashion_mnist, args=(str(dst), str(src)))
            other.append(child)
            child.start()
            child.join(60)
            assert child.exitcode == 0
        copy(fin, fout)

    monkeypatch.setattr(fashion_mnist.shutil, 'copyfileobj', half_then_another_process)
    assert fashion_mnist.prepare_fashion_mnist(str(dst), str(src)) == str(dst)
    assert other, 'the other process never ran'
    assert sorted(p.name for p in dst.iterdir()) == sorted(fashion_mnist.FILES)  # no part left
    for name, data in contents.items():
        assert (dst / name).read_bytes() == data, name
