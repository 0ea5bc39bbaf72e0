"""Video files encoded by FFmpeg through PyAV, with the audio of the input video copied.

- `codec='h264'`: libx264 at constant quality `quality` (CRF, 0-51, lower is better; default
  `DEFAULT_QUALITY`). Frames with even width and height are stored as yuv420p (4:2:0, plays
  everywhere); a frame with an odd width or height is stored as yuv444p (High 4:4:4 profile, the
  exact size kept, but some players, browsers and QuickTime among them, cannot play it).
- `codec='lossless'`: libx264rgb with qp 0, RGB stored as is: decodes bit-exactly (to the
  decoders of FFmpeg and OpenCV; few players can play it).
- The colour conversion (h264) is BT.601, limited range, and the stream is tagged so.
- `audio_from`: the audio streams of that file are copied packet by packet (not re-encoded),
  interleaved with the video, their times relative to its first video frame, so that the output's
  frames, which correspond one to one to the input's at the same frame rate, stay in sync.
- `write(rgb, time)`: a frame given its presentation time (seconds, as the input video's frame
  it comes from, see `mmp_jax.data.sources.FrameSource.times`) is shown at that time, in a
  time base of 1/`TIME_SCALE` s: a variable frame rate is kept, and the audio stays in sync
  with it; frames written without a time are shown at `fps`, the first at time 0.
"""
import fractions
import io
import pathlib
from collections.abc import Iterator

import av
import numpy as np

from mmp_jax.errors import UserError

CODECS = ('h264', 'lossless')
TIME_SCALE = 90000  # ticks per second of frames written with their time (MPEG's clock)
DEFAULT_QUALITY = 18
CONTAINERS = {'.mp4': 'mp4', '.mov': 'mov', '.mkv': 'matroska', '.avi': 'avi'}
_ENCODERS = {'h264': 'libx264', 'lossless': 'libx264rgb'}
_Interpolation = av.video.reformatter.Interpolation
# RGB -> YUV with chroma filtered from every input pixel and exact rounding (a 4:2:0 round trip
# of saturated gradients: 50.5 dB, against 49.9 with swscale's defaults)
_TO_YUV = _Interpolation.BICUBIC | _Interpolation.FULL_CHR_H_INP | _Interpolation.ACCURATE_RND


class EncodingError(UserError):
    """A video that PyAV cannot write as asked (container, codec or audio)."""


class NoEncoderError(EncodingError):
    """The FFmpeg of PyAV lacks the encoder asked for."""


def frame_rate(fps: float | fractions.Fraction) -> fractions.Fraction:
    """`fps` as the exact rate it stands for: 29.97002997 -> 30000/1001, 25.0 -> 25."""
    return fractions.Fraction(fps).limit_denominator(1001)


def pixel_format(codec: str, height: int, width: int) -> str:
    """The stored pixel format (see the module doc)."""
    if codec == 'lossless':
        return 'rgb24'
    return 'yuv420p' if height % 2 == 0 and width % 2 == 0 else 'yuv444p'


def check_quality(codec: str, quality: int | None) -> int | None:
    """The CRF to use (`DEFAULT_QUALITY` for h264 when None); ValueError for an unknown codec,
    a CRF outside 0-51, or a CRF given for the lossless codec."""
    if codec not in CODECS:
        raise UserError(f'codec {codec!r}: choose one of {", ".join(CODECS)}')
    if codec == 'lossless':
        if quality is not None:
            raise UserError('quality (CRF) applies to the h264 codec only; lossless has none')
        return None
    quality = DEFAULT_QUALITY if quality is None else quality
    if not 0 <= quality <= 51:
        raise UserError(f'quality (CRF) {quality}: must be in 0-51 (lower is better)')
    return quality


def _add_video_stream(container: av.container.OutputContainer, codec: str, quality: int | None,
                      rate: fractions.Fraction, height: int, width: int) -> av.VideoStream:
    options = {'qp': '0'} if quality is None else {'crf': str(quality)}
    stream = container.add_stream(_ENCODERS[codec], rate=rate, options=options)
    stream.width, stream.height = width, height
    stream.pix_fmt = pixel_format(codec, height, width)
    if codec == 'h264':
        stream.codec_context.colorspace = av.video.reformatter.Colorspace.ITU601
        stream.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
    return stream


def audio_streams(path: str | pathlib.Path | None) -> tuple[av.container.InputContainer | None, list]:
    """The open container of `path` and its audio streams; (None, []) when `path` is None, a
    folder (frames have no audio) or a file without audio. EncodingError if FFmpeg cannot read
    the file."""
    if path is None or pathlib.Path(path).is_dir():
        return None, []
    try:
        source = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise EncodingError(f'{path}: cannot read its audio: {error}') from None
    streams = list(source.streams.audio)
    if not streams:
        source.close()
        return None, []
    return source, streams


def has_audio(path: str | pathlib.Path | None) -> bool:
    """True when `path` is a file with an audio stream (see `audio_streams`)."""
    source, streams = audio_streams(path)
    if source is not None:
        source.close()
    return bool(streams)


def check_encoding(suffix: str, codec: str, quality: int | None, audio_from: str | pathlib.Path | None) -> None:
    """Raises unless a `suffix` file can hold the `codec` video and copies of the audio streams of
    `audio_from`: NoEncoderError when this FFmpeg has no such encoder, EncodingError when the
    container cannot hold the audio. Tried by writing the header to memory, on a 16x16 video."""
    source, streams = audio_streams(audio_from)
    try:
        with av.open(io.BytesIO(), 'w', format=CONTAINERS[suffix]) as container:
            try:
                _add_video_stream(container, codec, quality, fractions.Fraction(25), 16, 16)
            except (av.FFmpegError, ValueError) as error:
                raise NoEncoderError(f'FFmpeg (PyAV) has no {_ENCODERS[codec]} encoder: {error}') from None
            try:
                for stream in streams:
                    container.add_stream_from_template(stream)
                container.start_encoding()
            except (av.FFmpegError, ValueError) as error:
                names = ', '.join(stream.codec_context.name for stream in streams) or 'no audio'
                raise EncodingError(f'a {suffix} file cannot hold {codec} video with the audio of '
                                    f'{audio_from} ({names}): {error}') from None
    finally:
        if source is not None:
            source.close()


def _video_start(source: av.container.InputContainer) -> fractions.Fraction:
    """Seconds at which the first video frame of `source` is shown (0 without a video stream)."""
    for stream in source.streams.video:
        if stream.start_time is not None:
            return stream.start_time * stream.time_base
    return fractions.Fraction(0)


def _audio_packets(source: av.container.InputContainer, streams: list, outputs: list
                   ) -> Iterator[tuple[fractions.Fraction, av.Packet]]:
    """(seconds after the first video frame, packet re-assigned to its output stream) for every
    audio packet of `streams`, in file order."""
    start = _video_start(source)
    targets = dict(zip((stream.index for stream in streams), outputs))
    for packet in source.demux(streams):
        if packet.dts is None:   # the demuxer's end-of-stream marker
            continue
        shift = round(start / packet.time_base)
        packet.pts = None if packet.pts is None else packet.pts - shift
        packet.dts -= shift
        seconds = packet.dts * packet.time_base
        packet.stream = targets[packet.stream.index]
        yield seconds, packet


class VideoEncoder:
    """Writes rgb uint8 `[H, W, 3]` frames, all of one size, to `path` (container by `suffix`)
    at `fps` with `codec` at CRF `quality` (None for lossless; see `check_quality`), copying the
    audio streams of `audio_from` (see `check_encoding` for whether they fit)."""

    def __init__(self, path: pathlib.Path, suffix: str, fps: float, codec: str, quality: int | None,
                 audio_from: str | pathlib.Path | None = None):
        self.rate = frame_rate(fps)
        self.codec, self.quality = codec, quality
        self.source, self.streams = audio_streams(audio_from)
        self.container = None
        try:
            self.container = av.open(str(path), 'w', format=CONTAINERS[suffix])
        except (av.FFmpegError, OSError):
            self.abandon()
            raise
        self.audio = iter(())   # (seconds, packet) to copy, once the streams are added
        self.pending = None     # an audio packet read but not yet due
        self.video = None
        self.count = 0
        self.timed = False      # frames written with their time (decided by the first)
        self.last_pts = -1

    def _add_streams(self, height: int, width: int) -> None:
        """Adds the video stream (the first) and the copies of the audio streams."""
        self.video = _add_video_stream(self.container, self.codec, self.quality, self.rate, height, width)
        outputs = [self.container.add_stream_from_template(stream) for stream in self.streams]
        if self.streams:
            self.audio = _audio_packets(self.source, self.streams, outputs)

    def _mux_audio_until(self, seconds: fractions.Fraction | None) -> None:
        """Muxes the audio packets that start before `seconds` (all of them when None)."""
        while True:
            if self.pending is None:
                self.pending = next(self.audio, None)
                if self.pending is None:
                    return
            start, packet = self.pending
            if seconds is not None and start >= seconds:
                return
            self.container.mux(packet)
            self.pending = None

    def write(self, rgb: np.ndarray, time: fractions.Fraction | None = None) -> None:
        """Encodes one frame, rgb uint8 `[H, W, 3]`, shown at `time` seconds (the next frame at
        `fps` when None; see the module doc), and the audio up to its end."""
        if self.video is None:
            self._add_streams(rgb.shape[0], rgb.shape[1])
            self.timed = time is not None
            if self.timed:
                self.video.codec_context.time_base = fractions.Fraction(1, TIME_SCALE)
        if rgb.shape != (self.video.height, self.video.width, 3) or rgb.dtype != np.uint8:
            raise EncodingError(f'frame {self.count}: {rgb.dtype} {rgb.shape}, not uint8 '
                                f'{(self.video.height, self.video.width, 3)} as the first')
        if (time is not None) != self.timed:
            raise EncodingError(f'frame {self.count}: {"no" if time is None else "a"} time, unlike the first')
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
        if self.codec == 'h264':
            frame = frame.reformat(format=self.video.pix_fmt, interpolation=_TO_YUV,
                                   dst_colorspace=av.video.reformatter.Colorspace.ITU601)
        if self.timed:
            self.last_pts = max(round(time * TIME_SCALE), self.last_pts + 1)  # strictly increasing
            frame.pts, frame.time_base = self.last_pts, fractions.Fraction(1, TIME_SCALE)
            shown_until = fractions.Fraction(self.last_pts, TIME_SCALE) + 1 / self.rate
        else:
            frame.pts, frame.time_base = self.count, 1 / self.rate
            shown_until = (self.count + 1) / self.rate
        self.container.mux(self.video.encode(frame))
        self.count += 1
        self._mux_audio_until(shown_until)

    def close(self) -> None:
        """Flushes the encoder and the rest of the audio, and closes the file."""
        if self.video is not None:
            self.container.mux(self.video.encode(None))
            self._mux_audio_until(None)
        self.abandon()

    def abandon(self) -> None:
        """Closes the files (the output unfinished when `close` was not called)."""
        if self.container is not None:
            self.container.close()
            self.container = None
        if self.source is not None:
            self.source.close()
            self.source = None
