"""Streaming inference against the scanned model."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmp_jax.evaluate import chunk_starts
from mmp_jax.infer import DeblurredFrame, StreamingDeblurrer, TiledDeblurrer, deblur_in_chunks, tile_starts
from mmp_jax.models.mmp_rnn import MMPRNN
from tests.conftest import TINY_MMPRNN, init_variables

MODEL = MMPRNN(**TINY_MMPRNN)


@pytest.fixture(scope='module')
def variables():
    return init_variables(MODEL, 0, jnp.zeros((1, 5, 20, 24, 3)))


def _frames(count, height=18, width=22):
    return np.random.default_rng(0).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


@pytest.mark.slow
def test_streaming_equals_the_scanned_model(variables):
    frames = _frames(9)  # 18 x 22: padded to 20 x 24 and cropped back
    padded = np.pad(frames, ((0, 0), (0, 2), (0, 2), (0, 0)), mode='edge').astype(np.float32) / 255
    scanned = np.asarray(jax.jit(MODEL.apply)(variables, jnp.asarray(padded[None])))[0, :, :18, :22]
    for ends, first in (('drop', 2), ('replicate', 0)):
        streamed = list(StreamingDeblurrer(MODEL, variables, ends)(iter(frames)))
        indices = [f.index for f in streamed]
        assert indices == list(range(first, 9 - first))
        interior = np.stack([f.output for f in streamed if 2 <= f.index < 7])
        np.testing.assert_allclose(interior, scanned, atol=1e-5)
        assert streamed[0].sharp.shape == (18, 22, 3) and streamed[0].prior.shape == (18, 22, 1)


@pytest.mark.slow
@pytest.mark.parametrize('ends', ['drop', 'replicate'])
@pytest.mark.parametrize('chunk', [3, 16])
def test_chunks_of_k_frames_equal_the_per_frame_path(variables, ends, chunk):
    """11 frames in chunks of 3 (the last one short) or of 16 (longer than the video): the
    per-frame outputs and priors, each output given at most 2 K - 1 + future frames after its
    own (decoded with the chunk that completes its window or the next: memory stays flat)."""
    frames = _frames(11)
    single = list(StreamingDeblurrer(MODEL, variables, ends)(iter(frames)))
    read = []

    def source():
        for frame in frames:
            read.append(frame)
            yield frame

    lags, chunked = [], []
    for out in StreamingDeblurrer(MODEL, variables, ends, chunk_frames=chunk)(source()):
        lags.append(len(read) - 1 - out.index)
        chunked.append(out)
    assert [f.index for f in chunked] == [f.index for f in single]
    np.testing.assert_allclose(np.stack([f.output for f in chunked]), np.stack([f.output for f in single]), atol=1e-5)
    np.testing.assert_allclose(np.stack([f.prior for f in chunked]), np.stack([f.prior for f in single]), atol=1e-5)
    assert max(lags) <= 2 * chunk - 1 + MODEL.future_frames


@pytest.mark.slow
def test_a_batch_of_videos_equals_each_video_alone(variables):
    videos = np.stack([_frames(6), _frames(6)[:, ::-1]])  # [B, T, H, W, 3]
    deblurrer = StreamingDeblurrer(MODEL, variables, chunk_frames=4)
    batched = list(deblurrer.batch(iter(videos.transpose(1, 0, 2, 3, 4))))
    for b, video in enumerate(videos):
        alone = list(deblurrer(iter(video)))
        assert [outputs[b].index for outputs in batched] == [f.index for f in alone] == list(range(6))
        np.testing.assert_allclose(np.stack([outputs[b].output for outputs in batched]),
                                   np.stack([f.output for f in alone]), atol=1e-5)
        np.testing.assert_array_equal(batched[3][b].blurry, video[3])


@pytest.mark.slow
@pytest.mark.parametrize('count', [1, 2, 3])
def test_short_videos_get_every_frame(variables, count):
    assert [f.index for f in StreamingDeblurrer(MODEL, variables)(iter(_frames(count)))] == list(range(count))


@pytest.mark.slow
def test_bfloat16_is_close_to_float32(variables):
    frames = _frames(5)
    f32 = [f.output for f in StreamingDeblurrer(MODEL, variables)(iter(frames))]
    bf16 = [f.output for f in StreamingDeblurrer(MODEL, variables, dtype='bfloat16')(iter(frames))]
    assert np.abs(np.stack(f32) - np.stack(bf16)).mean() < 0.05


@pytest.mark.slow
def test_a_frame_of_another_size_is_refused(variables):
    frames = [*_frames(2), _frames(1, 18, 26)[0]]
    with pytest.raises(ValueError, match=r'frame 2: shape \(18, 26, 3\) differs'):
        list(StreamingDeblurrer(MODEL, variables)(iter(frames)))


@pytest.mark.slow
def test_reset_every_chunks_as_the_original_test(variables):
    """30 frames, chunks of 12 (starts 0, 8, 16 and 18, the last moved back to end with the
    video): the outputs equal the scanned model run on each chunk from a fresh state, each frame
    taken from the first chunk that outputs it."""
    frames, every = _frames(30), 12
    padded = np.pad(frames, ((0, 0), (0, 2), (0, 2), (0, 0)), mode='edge').astype(np.float32) / 255
    apply = jax.jit(MODEL.apply)
    expected = {}
    for start in chunk_starts(30, every, 2, 2):
        outputs = np.asarray(apply(variables, jnp.asarray(padded[None, start:start + every])))[0, :, :18, :22]
        for i, output in enumerate(outputs):
            expected.setdefault(start + 2 + i, output)
    deblurrer = StreamingDeblurrer(MODEL, variables, 'drop')
    dropped = list(deblur_in_chunks(deblurrer, iter(frames), every))
    assert [f.index for f in dropped] == list(range(2, 28))
    np.testing.assert_allclose(np.stack([f.output for f in dropped]), np.stack([expected[t] for t in range(2, 28)]),
                               atol=1e-5)
    replicated = list(deblur_in_chunks(StreamingDeblurrer(MODEL, variables), iter(frames), every))
    assert [f.index for f in replicated] == list(range(30))
    np.testing.assert_allclose(np.stack([f.output for f in replicated[2:28]]), np.stack([f.output for f in dropped]),
                               atol=1e-5)
    with pytest.raises(ValueError, match='a chunk needs more than 4 frames'):
        list(deblur_in_chunks(deblurrer, iter(frames), 4))


class _ChunkRecorder:
    """A stand-in deblurrer whose outputs say which chunk (its first frame) made them."""
    model = MODEL

    def __init__(self, ends):
        self.ends = ends

    def __call__(self, frames):
        frames = list(frames)
        first = 0 if self.ends == 'replicate' else 2
        for i in range(first, len(frames) - first):
            yield DeblurredFrame(i, frames[i], np.array(int(frames[0])), None)


@pytest.mark.parametrize('ends', ['drop', 'replicate'])
def test_reset_every_takes_each_frame_from_the_first_chunk_that_outputs_it(ends):
    """The chunking alone (the state's effect is too small at initialisation to see it)."""
    source = [np.array(t) for t in range(30)]
    made_by = {f.index: int(f.output) for f in deblur_in_chunks(_ChunkRecorder(ends), iter(source), 12)}
    want = {**{t: 0 for t in range(2, 10)}, **{t: 8 for t in range(10, 18)}, **{t: 16 for t in range(18, 26)},
            26: 18, 27: 18}
    if ends == 'replicate':
        want.update({0: 0, 1: 0, 28: 18, 29: 18})
    assert made_by == want
    assert {f.index: int(f.output) for f in deblur_in_chunks(_ChunkRecorder(ends), iter(source[:12]), 12)} == \
        {t: 0 for t in range(0 if ends == 'replicate' else 2, 12 if ends == 'replicate' else 10)}


def test_tile_starts_cover_the_frame_with_the_overlap():
    assert tile_starts(100, 40, 8) == [0, 32, 60]
    assert tile_starts(30, 40, 8) == [0]
    with pytest.raises(ValueError, match='overlap 40 must be'):
        tile_starts(100, 40, 40)


@pytest.mark.slow
def test_tiles_blend_to_the_untiled_output(variables):
    """40 x 48 frames in 2 x 2 tiles of 28 x 32 (overlap 12 and 16 px): each tile has its own
    recurrence. Tiles this small are all seam (the receptive field is wider than a tile): the
    measured mean and largest differences are 0.0029 and 0.059 (of 1); benchmarks/tiled_inference.py
    measures real tile sizes."""
    frames = _frames(7, 40, 48)
    deblurrer = StreamingDeblurrer(MODEL, variables, 'drop')
    whole = list(deblurrer(iter(frames)))
    single = list(TiledDeblurrer(deblurrer, (64, 64))(iter(frames)))  # one tile: the frame itself
    assert [f.index for f in single] == [2, 3, 4]
    np.testing.assert_array_equal(np.stack([f.output for f in single]), np.stack([f.output for f in whole]))
    tiled = list(TiledDeblurrer(deblurrer, (28, 32), overlap=12)(iter(frames)))
    assert [f.index for f in tiled] == [2, 3, 4] and tiled[0].prior.shape == (40, 48, 1)
    difference = np.abs(np.stack([f.output for f in tiled]) - np.stack([f.output for f in whole]))
    assert difference.mean() < 5e-3 and difference.max() < 0.1, (difference.mean(), difference.max())  # 0.0029, 0.059
    np.testing.assert_array_equal(tiled[1].blurry, frames[3])
