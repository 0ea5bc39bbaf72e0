"""The export engine called as a library (`mmp_jax.data.export`), without the command line."""
import dataclasses

import pytest

from mmp_jax.cli import export_tfrecords
from mmp_jax.data import export, tfrecords
from mmp_jax.errors import UserError

TINY = export.ExportSettings(source='synthetic', out='', flow='exact', height=32, width=48, frames_per_sequence=30,
                             num_sequences=2, num_shards=2, quiet=True)


@pytest.mark.slow
def test_the_engine_writes_resumes_and_refuses_other_settings(tmp_path):
    settings = dataclasses.replace(TINY, out=str(tmp_path / 'records'))
    summary = export.export(settings)
    assert (summary['sequences'], summary['shards'], summary['resumed_from']) == (2, 2, 0) and summary['frames'] > 0
    manifest = tfrecords.load_manifest(tmp_path / 'records')
    (tmp_path / 'records' / manifest['shards']['1']['file']).write_bytes(b'damaged')
    heard = []
    again = export.export(settings, heard.append)
    assert again['resumed_from'] == 1 and len(heard) == 1 and 'missing or damaged' in heard[0]
    assert tfrecords.load_manifest(tmp_path / 'records') == manifest  # the same bytes written again
    with pytest.raises(ValueError, match='holds an export made with other settings'):
        export.export(dataclasses.replace(settings, seed=1))


def test_every_setting_is_a_flag_of_the_command():
    args = export_tfrecords.parse_args(['--source', 'synthetic', '--out', 'x'])
    settings = export_tfrecords.settings_of(args)
    assert settings.source == 'synthetic' and settings.out == 'x' and settings.workers >= 1
    fields = dataclasses.fields(export.ExportSettings)
    assert {field.name for field in fields} == set(vars(args))
    differ = {field.name for field in fields if field.default is not dataclasses.MISSING
              and field.default != getattr(args, field.name)}
    assert differ == {'workers'}  # the command takes every core


def test_held_out_photos_are_a_synthetic_setting_the_manifest_names_when_chosen():
    assert 'photos' not in export.manifest_settings(TINY)  # as every earlier manifest: they resume
    assert export.manifest_settings(dataclasses.replace(TINY, photos='held_out'))['photos'] == 'held_out'
    args = export_tfrecords.parse_args(['--source', 'synthetic', '--out', 'x', '--photos', 'held_out'])
    assert export_tfrecords.settings_of(args).photos == 'held_out'


@pytest.mark.parametrize('contradiction, named', [
    ({'source': 'frames'}, '--input is needed for --source frames'),
    ({'source': 'frames', 'input': 'y', 'flow': 'dis', 'photos': 'held_out'}, '--photos chooses the photos'),
    ({'source': 'video', 'input': 'y', 'flow': 'exact'}, '--flow exact needs --source synthetic'),
    ({'windows': 'random', 'blur_frames': 9}, '--blur-frames is the N of sliding windows'),
])
def test_settings_that_contradict_one_another_are_refused_before_any_work(tmp_path, capsys, contradiction, named):
    with pytest.raises(UserError, match=named):
        dataclasses.replace(TINY, **contradiction)
    flags = [f'--{name.replace("_", "-")}={value}' for name, value in contradiction.items() if name != 'source']
    out = tmp_path / 'records'
    assert export_tfrecords.main(['--source', contradiction.get('source', 'synthetic'), '--out', str(out)]
                                 + flags) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'export_tfrecords: {named}') and err.count('\n') == 1
    assert not out.exists()
