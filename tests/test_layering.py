"""The layering of the project: the library (mmp_jax, above its data layer mmp_jax.data, above
its file layer mmp_jax.io) never imports the programs over it (tools, benchmarks, tests) or the
configs; mmp_jax.data never imports the rest of mmp_jax (arrows point down) but mmp_jax.io and
the floor under everything, mmp_jax.errors, which imports nothing of mmp_jax; mmp_jax.io imports
only the floor; models are pure Flax with no I/O, and the paper's architecture (rdb, mmp_net,
mmp_rnn) imports only the layers, `parts`, itself and the floor; orbax I/O is
mmp_jax/checkpoint.py's alone; only mmp_jax is installed."""
import configparser
import ast
import pathlib
from tests.conftest import REPO


PROGRAMS = {'tools', 'benchmarks', 'tests', 'configs'}
NO_IO = {'cv2', 'orbax', 'tensorflow', 'tensorflow_datasets', 'data_pipeline', 'tools', 'configs'}


def _modules(path: pathlib.Path) -> set[str]:
    """The dotted names `path` imports (absolute imports; `from a import b`: both `a` and `a.b`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
            names.update(f'{node.module}.{alias.name}' for alias in node.names)
    return names


def _imports(path: pathlib.Path) -> set[str]:
    """The top-level packages `path` imports."""
    return {name.split('.')[0] for name in _modules(path)}


def test_library_imports_point_down():
    for path in (REPO / 'mmp_jax').rglob('*.py'):
        assert not _imports(path) & PROGRAMS, f'{path.relative_to(REPO)} imports {_imports(path) & PROGRAMS}'


FLOOR = 'mmp_jax.errors'


def _imports_above(layer: str, allowed: tuple[str, ...]) -> None:
    for path in (REPO / 'mmp_jax' / layer).rglob('*.py'):
        above = {name for name in _modules(path) if name.split('.')[0] in PROGRAMS
                 or (name.startswith('mmp_jax') and not name.startswith(allowed + (FLOOR,)))}
        assert not above, f'{path.relative_to(REPO)} imports {above}'


def test_the_data_layer_imports_nothing_above_it():
    _imports_above('data', ('mmp_jax.data', 'mmp_jax.io'))


def test_the_file_layer_imports_only_the_floor():
    _imports_above('io', ('mmp_jax.io',))


def test_the_errors_module_is_the_floor():
    imported = {name for name in _modules(REPO / 'mmp_jax' / 'errors.py') if name.startswith('mmp_jax')}
    assert not imported, f'mmp_jax/errors.py imports {imported}'


def test_only_mmp_jax_is_installed():
    setup = configparser.ConfigParser()
    setup.read(REPO / 'setup.cfg')
    assert setup['options.packages.find']['include'].split() == ['mmp_jax*']


def test_models_are_pure():
    for path in (REPO / 'mmp_jax' / 'models').rglob('*.py'):
        io = (_imports(path) & NO_IO) | {name for name in _modules(path) if name.startswith('mmp_jax.data')}
        assert not io, f'{path.relative_to(REPO)} imports {io}'


def test_orbax_is_only_imported_by_the_checkpoint_module():
    users = sorted(str(path.relative_to(REPO)) for folder in ('mmp_jax', 'tools', 'benchmarks')
                   for path in (REPO / folder).rglob('*.py') if 'orbax' in _imports(path))
    assert users == ['mmp_jax/checkpoint.py']


def test_inference_needs_no_video_libraries():
    """`mmp_jax.infer` is computation only (benchmarks run it on machines without PyAV or
    OpenCV); reading and writing files is `deblur_files`'."""
    imported = _modules(REPO / 'mmp_jax' / 'infer.py')
    assert not {name.split('.')[0] for name in imported} & {'av', 'cv2'}
    assert not {'mmp_jax.frame_writers', 'mmp_jax.video_encoding', 'mmp_jax.data.sources'} & imported


# How each platform computes (the formulations and the setting that picks them) is `layers`' to know:
# the modules of the paper's architecture import neither.
FORMULATION_MODULES = {'mmp_jax.models.winograd', 'mmp_jax.models.channel_padding', 'mmp_jax.models.formulations'}


def test_only_layers_knows_the_platforms_formulations():
    users = sorted(str(path.relative_to(REPO)) for path in (REPO / 'mmp_jax').rglob('*.py')
                   if _modules(path) & FORMULATION_MODULES)
    assert users == ['mmp_jax/models/layers.py']


# The paper's architecture: its modules import Flax and JAX, the layers, the unmade concatenation
# (`parts`), one another and the floor; nothing that knows a platform, a file or a backend.
ARCHITECTURE = ('rdb', 'mmp_net', 'mmp_rnn')
ARCHITECTURE_MAY_IMPORT = {'mmp_jax.errors', 'mmp_jax.models.layers', 'mmp_jax.models.parts'} | {
    f'mmp_jax.models.{name}' for name in ARCHITECTURE}


def test_the_architecture_imports_only_layers_parts_and_itself():
    for name in ARCHITECTURE:
        path = REPO / 'mmp_jax' / 'models' / f'{name}.py'
        ours = {module for module in _modules(path) if module.startswith('mmp_jax')}
        modules = {module for module in ours if (REPO / f'{module.replace(".", "/")}.py').exists()}
        assert modules <= ARCHITECTURE_MAY_IMPORT, f'{name} imports {sorted(modules - ARCHITECTURE_MAY_IMPORT)}'
        assert _imports(path) - {'mmp_jax'} <= {'dataclasses', 'typing', 'collections', 'functools', 'math',
                                                'flax', 'jax', 'numpy'}, f'{name} imports {_imports(path)}'
