"""`ram://` paths for tests: TensorFlow's in-memory filesystem (`tf.io.gfile`, this process
only), routed through `etils.epath` as epath routes `gs://` (its gfile backend), so that code
written for bucket URLs runs offline. epath has no public hook for a new scheme's backend, so
`RamPath` overrides the two private members of its gfile path class that pick one."""
import os

from etils import epath
from etils.epath import backend, gpath

SCHEME = 'ram'


@epath.register_path_cls(f'{SCHEME}://')
class RamPath(gpath.PosixGPath):
    """`ram://a/b`, stored as the parts `/ram/a/b` (as epath stores `gs://` paths)."""

    def __new__(cls, *parts):
        full = '/'.join(os.fspath(part) for part in parts)
        if full.startswith(f'{SCHEME}://'):
            full = f'/{SCHEME}/' + full[len(SCHEME) + 3:]
        return super(gpath._GPath, cls).__new__(cls, full)  # pylint: disable=bad-super-call (skips gs:// parsing)

    @property
    def _uri_scheme(self):
        return SCHEME if self.parts[:2] == ('/', SCHEME) else None

    @property
    def _backend(self):
        return backend.tf_backend if self._uri_scheme else backend.os_backend
