"""The layering of the project: the library (mmp_jax, above data_pipeline) never
imports the programs over it (tools, benchmarks, tests) or the configs; data_pipeline never
imports mmp_jax (arrows point down); models are pure Flax with no I/O; orbax I/O is
mmp_jax/checkpoint.py's alone."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROGRAMS = {'tools', 'benchmarks', 'tests', 'configs'}
NO_IO = {'cv2', 'orbax', 'tensorflow', 'tensorflow_datasets', 'data_pipeline', 'tools', 'configs'}


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split('.')[0])
    return names


@pytest.mark.parametrize('folder,forbidden', [('mmp_jax', PROGRAMS),
                                              ('data_pipeline', PROGRAMS | {'mmp_jax'})])
def test_library_imports_point_down(folder, forbidden):
    for path in (ROOT / folder).rglob('*.py'):
        assert not _imports(path) & forbidden, f'{path.relative_to(ROOT)} imports {_imports(path) & forbidden}'


def test_models_are_pure():
    for path in (ROOT / 'mmp_jax' / 'models').rglob('*.py'):
        assert not _imports(path) & NO_IO, f'{path.relative_to(ROOT)} imports {_imports(path) & NO_IO}'


def test_orbax_is_only_imported_by_the_checkpoint_module():
    users = sorted(str(path.relative_to(ROOT)) for folder in ('mmp_jax', 'data_pipeline', 'tools', 'benchmarks')
                   for path in (ROOT / folder).rglob('*.py') if 'orbax' in _imports(path))
    assert users == ['mmp_jax/checkpoint.py']
