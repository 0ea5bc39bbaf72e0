"""GOPRO (benchmark layout) and BSD as tensorflow-datasets builders over a manual_dir.

Nothing is downloaded: point `manual_dir` at the extracted archive (the folder holding
`train/`, `test/`, and for BSD `valid/`), e.g.

    import mmp_jax.data.tfds_builders  # registers 'gopro' and 'bsd'
    ds = tfds.load('bsd', split='train', data_dir=DATA_DIR, download_and_prepare_kwargs={
        'download_config': tfds.download.DownloadConfig(manual_dir=BSD_ROOT)})

One example per blurry frame: `blurry`, `sharp` (uint8 RGB images), `sequence` and `index`
(its position in the sequence), in sequence order.
"""
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from mmp_jax.data import sources

_MANUAL = ('Extract the archive and pass its folder (the one holding the split folders) as '
           'manual_dir; it is read, never downloaded.')


class _PairedFrames(tfds.core.GeneratorBasedBuilder):
    """Blurry/sharp frame pairs of a benchmark whose layout a `sources` reader knows."""
    VERSION = tfds.core.Version('1.0.0')
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL
    SPLITS: tuple[str, ...] = ()

    def _sequences(self, root: pathlib.Path, split: str) -> list:
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            'blurry': tfds.features.Image(shape=(None, None, 3)),
            'sharp': tfds.features.Image(shape=(None, None, 3)),
            'sequence': tfds.features.Text(),
            'index': tfds.features.Scalar(dtype=np.int64),
        }), supervised_keys=('blurry', 'sharp'))

    def _split_generators(self, dl_manager):
        root = pathlib.Path(dl_manager.manual_dir)
        return {split: self._generate_examples(root, split) for split in self.SPLITS
                if (root / split).is_dir()}

    def _generate_examples(self, root: pathlib.Path, split: str):
        for ref in self._sequences(root, split):
            blurry, sharp = sources.list_frames(ref.blurry), sources.list_frames(ref.sharp)
            if len(blurry) != len(sharp):
                raise sources.SourceError(f'{ref.blurry}: {len(blurry)} blurry but {len(sharp)} sharp frames')
            for index, (b, s) in enumerate(zip(blurry, sharp)):
                yield f'{ref.name}/{index:06d}', {'blurry': b, 'sharp': s, 'sequence': ref.name, 'index': index}


class Gopro(_PairedFrames):
    """GOPRO benchmark (Nah et al. 2017): `<split>/<seq>/blur_gamma` (or `blur`), `<seq>/sharp`;
    1280x720. Configs name the blurry folder: 'blur_gamma' (the default, the paper's, e.g.
    `tfds.load('gopro', ...)`) or 'blur' (`tfds.load('gopro/blur', ...)`)."""
    SPLITS = ('train', 'test')
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name, description=f'blurry frames from <seq>/{name}')
                       for name in sources.GOPRO_BLURRY]

    def _sequences(self, root: pathlib.Path, split: str) -> list:
        return sources.gopro_sequences(root, split, self.builder_config.name)


class Bsd(_PairedFrames):
    """BSD (Zhong et al. 2020), e.g. 2ms-16ms: `<split>/<seq>/Blur/RGB`, `<seq>/Sharp/RGB`; 640x480."""
    SPLITS = ('train', 'valid', 'test')

    def _sequences(self, root: pathlib.Path, split: str) -> list:
        return sources.bsd_sequences(root, split)
