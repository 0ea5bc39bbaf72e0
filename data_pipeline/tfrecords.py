"""The record schema, shard naming and the manifest, and a TensorFlow-free reader.

One `tf.train.Example` per blurry frame, frames of a sequence in order within a shard:

    source       bytes   'synthetic', 'gopro_raw', 'gopro', 'bsd', 'frames', 'video'
    sequence     bytes   sequence name (unique within the data set)
    index        int64   position of this blurry frame in its sequence (0, 1, ...)
    window       int64   sharp frames averaged into it (Eq. 1); 0 where the set came blurred
    blurry       bytes   PNG, uint8 RGB [H, W, 3]
    sharp        bytes   PNG, uint8 RGB [H, W, 3] (the centre sharp frame of the window)
    mmp          bytes   16-bit PNG of round(MMP * 65535), [H, W]; absent where no flow exists
    flow_forward, flow_backward
                 bytes   optional (`--store-flows`): the window's flows, float16 little-endian
                         [N-1, H, W, 2], (dx, dy) pixels

Shards are named as tensorflow-datasets names them, `<name>.tfrecord-00000-of-00008`, each
written under a temporary name and renamed when complete; `manifest.json` lists the finished
ones (with their sizes and SHA-256), so an export that was killed resumes where it stopped.
`read_examples` parses records with numpy and the standard library only (the GPU machine has
no TensorFlow); it checks record lengths but not the CRCs.
"""
import hashlib
import json
import pathlib
import struct
from collections.abc import Iterator

import cv2
import numpy as np

from data_pipeline import atomic

MMP_SCALE = 65535.0
MANIFEST = 'manifest.json'


def shard_name(name: str, index: int, count: int) -> str:
    return f'{name}.tfrecord-{index:05d}-of-{count:05d}'


def encode_png(image: np.ndarray) -> bytes:
    """uint8 RGB `[H, W, 3]` or uint16 `[H, W]` -> PNG bytes (deterministic)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode('.png', image)
    if not ok:
        raise ValueError(f'PNG encoding failed for an image of shape {image.shape}')
    return data.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError('a record holds bytes that are not a PNG')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


def mmp_to_png(mmp: np.ndarray) -> bytes:
    """MMP `[H, W, 1]` in [0, 1] -> 16-bit PNG bytes (error <= 1 / 131070)."""
    return encode_png(np.round(np.clip(mmp[..., 0], 0, 1) * MMP_SCALE).astype(np.uint16))


def png_to_mmp(data: bytes) -> np.ndarray:
    return (decode_png(data).astype(np.float32) / MMP_SCALE)[..., None]


def frame_example(source: str, sequence: str, index: int, window: int, blurry: np.ndarray,
                  sharp: np.ndarray, mmp: np.ndarray | None,
                  flows: tuple[np.ndarray, np.ndarray] | None = None) -> bytes:
    """One serialised `tf.train.Example` of the schema above."""
    import tensorflow as tf  # noqa: PLC0415 (only the exporter needs TensorFlow)
    as_bytes = lambda *v: tf.train.Feature(bytes_list=tf.train.BytesList(value=list(v)))
    as_int = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
    feature = {'source': as_bytes(source.encode()), 'sequence': as_bytes(sequence.encode()),
               'index': as_int(index), 'window': as_int(window),
               'blurry': as_bytes(encode_png(blurry)), 'sharp': as_bytes(encode_png(sharp))}
    if mmp is not None:
        feature['mmp'] = as_bytes(mmp_to_png(mmp))
    if flows is not None:
        feature['flow_forward'] = as_bytes(np.asarray(flows[0], '<f2').tobytes())
        feature['flow_backward'] = as_bytes(np.asarray(flows[1], '<f2').tobytes())
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)  # map order fixed: same bytes every run


def write_shard(path: pathlib.Path, records: list[bytes]) -> dict:
    """Writes `records` to `path` atomically; returns its manifest entry."""
    import tensorflow as tf  # noqa: PLC0415
    with atomic.replacing(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for record in records:
            writer.write(record)
    data = path.read_bytes()
    return {'file': path.name, 'records': len(records), 'bytes': len(data),
            'sha256': hashlib.sha256(data).hexdigest()}


def load_manifest(directory: pathlib.Path) -> dict:
    path = directory / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def save_manifest(directory: pathlib.Path, manifest: dict) -> None:
    atomic.write_json(directory / MANIFEST, manifest)


# --- TensorFlow-free reading -------------------------------------------------------------

def read_records(path: str | pathlib.Path) -> Iterator[bytes]:
    """The records of a TFRecord file (length-checked, CRCs not verified)."""
    with open(path, 'rb') as handle:
        while header := handle.read(12):
            if len(header) < 12:
                raise ValueError(f'{path}: truncated record header')
            (length,) = struct.unpack('<Q', header[:8])
            data = handle.read(length)
            if len(data) < length or len(handle.read(4)) < 4:
                raise ValueError(f'{path}: truncated record')
            yield data


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of a protobuf message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        else:
            raise ValueError(f'unsupported protobuf wire type {wire}')
        yield number, wire, value


def _feature_values(feature: bytes) -> list:
    for kind, _, payload in _fields(feature):
        values = []
        for _, wire, value in _fields(payload):
            if kind == 1:                      # BytesList
                values.append(value)
            elif kind == 3:                    # Int64List, packed or not
                if wire == 2:
                    pos = 0
                    while pos < len(value):
                        item, pos = _varint(value, pos)
                        values.append(item - (1 << 64) if item >= 1 << 63 else item)
                else:
                    values.append(value - (1 << 64) if value >= 1 << 63 else value)
            elif kind == 2:                    # FloatList
                values.extend(np.frombuffer(value, '<f4').tolist())
        return values
    return []


def parse_example(record: bytes) -> dict[str, list]:
    """A serialised `tf.train.Example` -> `{name: [values]}` (bytes, ints or floats)."""
    out = {}
    for _, _, features in _fields(record):          # Example.features
        for _, _, entry in _fields(features):        # Features.feature map entries
            key, value = b'', b''
            for number, _, item in _fields(entry):
                if number == 1:
                    key = item
                elif number == 2:
                    value = item
            out[key.decode()] = _feature_values(value)
    return out


def read_examples(path: str | pathlib.Path) -> Iterator[dict]:
    """Decoded frames of a shard: dicts with source, sequence, index, window, blurry, sharp
    (uint8 `[H, W, 3]`), mmp (float32 `[H, W, 1]` or None) and flow_forward, flow_backward
    (float32 `[N-1, H, W, 2]` or None)."""
    for record in read_records(path):
        raw = parse_example(record)
        blurry = decode_png(raw['blurry'][0])
        flow_shape = (raw['window'][0] - 1,) + blurry.shape[:2] + (2,)
        flow = lambda key: (np.frombuffer(raw[key][0], '<f2').reshape(flow_shape).astype(np.float32)
                            if key in raw else None)
        yield {'source': raw['source'][0].decode(), 'sequence': raw['sequence'][0].decode(),
               'index': raw['index'][0], 'window': raw['window'][0],
               'blurry': blurry, 'sharp': decode_png(raw['sharp'][0]),
               'mmp': png_to_mmp(raw['mmp'][0]) if 'mmp' in raw else None,
               'flow_forward': flow('flow_forward'), 'flow_backward': flow('flow_backward')}
