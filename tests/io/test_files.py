"""The file layer (`mmp_jax.io`) on local folders and on URLs, offline: TensorFlow's in-memory
`ram://` filesystem (`tests.ram_filesystem`) stands for a bucket."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from mmp_jax.io import atomic, paths, staging
from tests import ram_filesystem  # noqa: F401 (registers ram://)

ROOT = 'ram://io/staging'
ON_URLS = pytest.mark.skipif(importlib.util.find_spec('tensorflow') is None, reason="ram:// is TensorFlow's")


@pytest.mark.parametrize('folder', ['local', pytest.param('ram://io/atomic', marks=ON_URLS)])
def test_atomic_writes_leave_the_old_file_or_the_new_and_no_temporary(tmp_path, folder):
    target = paths.path(f'{tmp_path if folder == "local" else folder}/value.json')
    atomic.write_json(target, {'a': 1})
    atomic.write_json(target, {'a': 2})
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        paths.path(tmp).write_text('half')
        raise RuntimeError('killed while writing')
    assert json.loads(target.read_text()) == {'a': 2}
    assert [p.name for p in target.parent.iterdir()] == ['value.json'] and atomic.temporaries(target) == []


@ON_URLS
def test_staging_copies_file_by_file_keeping_what_it_must(monkeypatch):
    with staging.scratch() as scratch:
        local = scratch / 'frames'
        (local / 'nested').mkdir(parents=True)
        for name in ('0.png', '1.png', 'nested/a.txt'):
            (local / name).write_bytes(name.encode())
        merged = paths.path(f'{ROOT}/merged')  # unmarked: its other files kept, only stale ones go
        merged.mkdir(parents=True)
        for name in ('1.png', '2.png', 'notes.txt'):
            (merged / name).write_bytes(b'old')
        staging.upload(local, merged, marker=False, stale=lambda name: name.endswith('.png'))
        assert sorted(p.name for p in merged.iterdir()) == ['0.png', '1.png', 'nested', 'notes.txt']
        assert (merged / '1.png').read_bytes() == b'1.png' and (merged / 'notes.txt').read_bytes() == b'old'
        marked = paths.path(f'{ROOT}/marked')  # marked: an incomplete folder there replaced, the marker last
        marked.mkdir(parents=True)
        (marked / 'leftover').write_bytes(b'')
        staging.upload(local, marked, marker=True)
        assert sorted(p.name for p in marked.iterdir()) == ['0.png', '1.png', 'COMPLETE', 'nested']
        staging.download(marked, scratch / 'copy', marker=True)
        assert sorted(os.listdir(scratch / 'copy')) == ['0.png', '1.png', 'nested']
        assert (scratch / 'copy' / 'nested' / 'a.txt').read_bytes() == b'nested/a.txt'
        staging.download(marked, scratch / 'flat', marker=False, nested=False)
        assert sorted(os.listdir(scratch / 'flat')) == ['0.png', '1.png', 'COMPLETE']
        copy_file = atomic.copy_file
        monkeypatch.setattr(atomic, 'copy_file', lambda source, target: (copy_file(source, target), 1 / 0))
        with pytest.raises(ZeroDivisionError):  # a new folder cut short is removed
            staging.upload(local, f'{ROOT}/new', marker=False)
        assert not paths.path(f'{ROOT}/new').exists()
    assert scratch.name.startswith(staging.PREFIX) and not os.path.exists(scratch)


def test_a_writers_temporaries_are_its_own_and_orphans_go(tmp_path):
    target = tmp_path / 'out.mp4'
    ours, folder = atomic.temporary_beside(target), atomic.temporary_beside(tmp_path / 'frames', folder=True)
    assert ours.suffix == '.mp4' and ours.name.startswith(f'.out.mp4.tmp-{os.getpid()}-') and folder.is_dir()
    gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead = int(gone.stdout)
    orphan = tmp_path / f'.out.mp4.tmp-{dead}-abc.mp4'  # a killed writer's
    orphan.write_bytes(b'')
    others = [tmp_path / name for name in ('.out.mp4.tmp-x', f'.other.mp4.tmp-{dead}-a.mp4', f'out.mp4.tmp-{dead}-a')]
    for path in others:
        path.write_bytes(b'')
    atomic.remove_orphans(target)
    assert not orphan.exists() and ours.exists() and folder.exists() and all(p.exists() for p in others)
