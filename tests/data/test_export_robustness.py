"""tools.export_tfrecords and the shard reader when things break: a worker killed, a damaged
shard or manifest, foreign files in --out, a folder that cannot be written."""
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest

from mmp_jax.data import input_pipeline, tfrecords
from mmp_jax.cli import export_tfrecords
from tests.conftest import REPO

TINY = ['--source', 'synthetic', '--flow', 'exact', '--height', '32', '--width', '48',
        '--frames-per-sequence', '40', '--quiet']
DEAD_WORKER_SECONDS = 60  # the export must end this soon after a worker is killed


def _digests(out) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob('mmp.tfrecord-*'))}


def _workers(pid: int) -> list[int]:
    """The pool workers among the children of `pid` (spawned with --multiprocessing-fork)."""
    psutil = pytest.importorskip('psutil')
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    workers = []
    for child in children:
        try:
            if '--multiprocessing-fork' in child.cmdline():
                workers.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return workers


def _listed_shards(out) -> int:
    try:
        return len(json.loads((out / tfrecords.MANIFEST).read_text())['shards'])
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_a_killed_worker_ends_the_export_with_one_line_and_a_rerun_gives_the_same_bytes(tmp_path):
    args = TINY + ['--num-sequences', '6', '--num-shards', '6', '--workers', '2']
    straight, killed = tmp_path / 'straight', tmp_path / 'killed'
    assert export_tfrecords.main(args + ['--out', str(straight)]) == 0
    command = [sys.executable, '-m', 'tools.export_tfrecords'] + args + ['--out', str(killed)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline and _listed_shards(killed) == 0:
        time.sleep(0.02)
    victims = _workers(process.pid)
    assert process.poll() is None and victims, 'the export ended before a worker could be killed'
    os.kill(victims[0], signal.SIGKILL)
    killed_at = time.time()
    try:
        _, err = process.communicate(timeout=DEAD_WORKER_SECONDS)
    finally:
        process.kill()
    seconds = time.time() - killed_at
    lines = [line for line in err.splitlines() if line.startswith('export_tfrecords:')]
    assert process.returncode == 2, err
    assert len(lines) == 1 and 'its worker process died' in lines[0] and 'mmp.tfrecord-' in lines[0], err
    print(f'\nexport ended {seconds:.1f} s after its worker was killed: {lines[0]}')
    listed = json.loads((killed / tfrecords.MANIFEST).read_text())['shards']
    assert 1 <= len(listed) < 6
    for entry in listed.values():  # the finished shards are kept, whole
        assert hashlib.sha256((killed / entry['file']).read_bytes()).hexdigest() == entry['sha256']
    assert not list(killed.glob('.*.tmp'))
    assert export_tfrecords.main(args + ['--out', str(killed)]) == 0
    assert _digests(killed) == _digests(straight) and len(_digests(straight)) == 6
    assert (killed / tfrecords.MANIFEST).read_bytes() == (straight / tfrecords.MANIFEST).read_bytes()


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A finished two-shard export (not to be changed: copy it)."""
    out = tmp_path_factory.mktemp('records') / 'out'
    assert export_tfrecords.main(TINY + ['--num-sequences', '3', '--num-shards', '2', '--workers', '1',
                                         '--out', str(out)]) == 0
    return out


def _rerun(out) -> int:
    return export_tfrecords.main(TINY + ['--num-sequences', '3', '--num-shards', '2', '--workers', '1',
                                         '--out', str(out)])


@pytest.mark.slow
def test_a_damaged_or_truncated_finished_shard_is_written_again(exported, tmp_path):
    out = tmp_path / 'out'
    shutil.copytree(exported, out)
    first, second = sorted(out.glob('mmp.tfrecord-*'))
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    first.write_bytes(bytes(data))
    second.write_bytes(second.read_bytes()[:-100])
    assert _rerun(out) == 0
    assert _digests(out) == _digests(exported)


def test_only_the_exporters_own_temporaries_are_removed(exported, tmp_path):
    out = tmp_path / 'out'
    shutil.copytree(exported, out)
    foreign = [out / '.notes.tmp', out / '.mmp.tfrecord-00000-of-00009.abcd1234.tmp', out / '.other.x.tmp']
    own = [out / '.mmp.tfrecord-00001-of-00002.k2j4_x8z.tmp', out / '.manifest.json.q1w2e3r4.tmp']
    for path in foreign + own:
        path.write_text('left here')
    assert _rerun(out) == 0
    assert all(path.exists() for path in foreign) and not any(path.exists() for path in own)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_damaged_manifest_is_one_line_naming_it(exported, tmp_path, capsys):
    out = tmp_path / 'out'
    shutil.copytree(exported, out)
    (out / tfrecords.MANIFEST).write_text('{"settings": {"source": "synth')
    assert _rerun(out) == 2
    assert _one_line(capsys).startswith(f'export_tfrecords: {out / tfrecords.MANIFEST}: damaged, not JSON')


def test_an_out_folder_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / 'file').write_text('')
    out = tmp_path / 'file' / 'out'
    assert _rerun(out) == 2
    assert _one_line(capsys) == f'export_tfrecords: {out}: Not a directory'


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_a_read_only_out_folder_is_one_line(tmp_path, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    out.chmod(0o555)
    try:
        assert _rerun(out) == 2
    finally:
        out.chmod(0o755)
    assert _one_line(capsys) == f'export_tfrecords: {out / "mmp.tfrecord-00000-of-00002"}: Permission denied'


def test_crc32c_is_castagnoli():
    assert tfrecords.crc32c(b'123456789') == 0xE3069283
    assert tfrecords.crc32c(b'') == 0


def test_a_huge_record_length_is_a_value_error_naming_the_file_and_offset(exported, tmp_path):
    path = tmp_path / 'huge'
    first = (exported / 'mmp.tfrecord-00000-of-00002').read_bytes()
    length = struct.pack('<Q', 1 << 62)
    path.write_bytes(first + length + struct.pack('<I', tfrecords.masked_crc(length)) + b'\0' * 64)
    with pytest.raises(ValueError, match=f'{path}: record at byte {len(first)}: record length {1 << 62} runs past'):
        list(tfrecords.read_records(path))


@pytest.mark.parametrize('start', [0, 200])  # a record header, a record's PNG bytes
def test_zeroed_bytes_are_an_error_naming_the_file_and_the_record(exported, tmp_path, start):
    path = tmp_path / 'mmp.tfrecord-00000-of-00001'
    data = bytearray((exported / 'mmp.tfrecord-00000-of-00002').read_bytes())
    data[start:start + 4096] = bytes(4096)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f'{path}: record at byte 0: damaged record'):
        list(tfrecords.read_examples(path))
    with pytest.raises(ValueError, match=f'{path}: record at byte 0: damaged record'):
        input_pipeline.load_windows([str(path)], 3)
