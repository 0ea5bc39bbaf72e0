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
no TensorFlow); it checks record lengths and CRCs, and a damaged shard is a ValueError naming
the file and the record.
"""
import errno
import functools
import hashlib
import json
import os
import struct
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from mmp_jax.errors import UserError
from mmp_jax.io import atomic, paths, random_access
from mmp_jax.data import decode_limits

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


def decode_png(data: bytes, max_pixels: int = decode_limits.DEFAULT_MAX_PIXELS) -> np.ndarray:
    """PNG bytes -> uint8 RGB `[H, W, 3]` or uint16 `[H, W]`; a ValueError when they are not a
    PNG, or when the size its header states is over `max_pixels` (checked before decoding)."""
    if bytes(data[:8]) != b'\x89PNG\r\n\x1a\n':
        raise UserError('a record holds bytes that are not a PNG')
    decode_limits.check_image(data, max_pixels, name="a record's PNG")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise UserError('a record holds bytes that are not a PNG')
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


def write_shard(path: str | os.PathLike, records: Iterable[bytes]) -> dict:
    """Writes `records` (taken one at a time: a generator keeps memory flat) to `path`
    atomically; returns its manifest entry. A failed write (disk full, ...) is an OSError
    naming `path`."""
    import tensorflow as tf  # noqa: PLC0415
    count = 0
    try:
        with atomic.replacing(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
            for record in records:
                writer.write(record)
                count += 1
    except tf.errors.OpError as error:
        raise OSError(errno.EIO, error.message, str(path)) from error
    except OSError as error:  # named after the shard, not its temporary file
        raise OSError(error.errno, error.strerror, str(path)) from error
    path = paths.as_path(path)
    return {'file': path.name, 'records': count, 'bytes': path.stat().length, 'sha256': sha256(path)}


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (local or a URL), read in chunks."""
    digest = hashlib.sha256()
    with paths.as_path(path).open('rb') as handle:
        while chunk := handle.read(1 << 22):  # gfile handles have no `readinto` for file_digest
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(directory: str | os.PathLike) -> dict:
    """The directory's manifest (`{}` where it has none); a damaged one is a ValueError naming it."""
    path = paths.as_path(directory) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_bytes())
    except ValueError as error:
        raise UserError(f'{path}: damaged, not JSON ({error}); delete it to export again') from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get('shards', {}), dict):
        raise UserError(f'{path}: damaged, not a manifest; delete it to export again')
    return manifest


def save_manifest(directory: str | os.PathLike, manifest: dict) -> None:
    atomic.write_json(paths.as_path(directory) / MANIFEST, manifest)


# --- TensorFlow-free reading -------------------------------------------------------------

@functools.cache
def _crc_table() -> np.ndarray:
    """CRC-32C (Castagnoli, reflected) of each byte value, as TFRecord files use it."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


def _gf2_apply(matrix: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A 32x32 GF(2) matrix (its 32 columns as uint32) applied to each uint32 of `values`."""
    bits = (values[:, None] >> np.arange(32, dtype=np.uint32)) & np.uint32(1)
    return np.bitwise_xor.reduce(bits * matrix, axis=1)


def _zeros_operator(count: int) -> np.ndarray:
    """The matrix that moves a CRC register over `count` zero bytes."""
    table, basis = _crc_table(), np.uint32(1) << np.arange(32, dtype=np.uint32)
    step, result = table[basis & np.uint32(0xFF)] ^ (basis >> np.uint32(8)), basis
    while count:
        if count & 1:
            result = _gf2_apply(step, result)
        step, count = _gf2_apply(step, step), count >> 1
    return result


def crc32c(data: bytes) -> int:
    """CRC-32C of `data`, computed on 2^k lanes at once: zero bytes in front leave a CRC with a
    zero start register unchanged, so the data are padded in front, cut into equal lanes, and
    the lanes' CRCs are joined pairwise; the start register (all ones) is added at the end."""
    lanes = 1 << (len(data) // 256).bit_length()
    chunk = -(-len(data) // lanes)
    block = np.zeros(lanes * chunk, np.uint8)
    block[len(block) - len(data):] = np.frombuffer(data, np.uint8)
    columns, table = block.reshape(lanes, chunk).T.astype(np.uint32), _crc_table()
    register = np.zeros(lanes, np.uint32)
    for column in columns:
        register = table[(register ^ column) & np.uint32(0xFF)] ^ (register >> np.uint32(8))
    operator = _zeros_operator(chunk)
    while len(register) > 1:
        register = _gf2_apply(operator, register[0::2]) ^ register[1::2]
        operator = _gf2_apply(operator, operator)
    start = _gf2_apply(_zeros_operator(len(data)), np.array([0xFFFFFFFF], np.uint32))
    return int(register[0] ^ start[0]) ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """The masked CRC-32C that TFRecord files store after each length and each record."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _record_length(header: bytes, room: int, where: str) -> int:
    """The data length of a record from its 12-byte header, checked against its CRC and against
    the `room` left in the file (so that a damaged length never allocates memory)."""
    if len(header) < 12:
        raise UserError(f'{where}: truncated record header')
    length, stored = struct.unpack('<QI', header)
    if masked_crc(header[:8]) != stored:
        raise UserError(f'{where}: damaged record header (CRC mismatch)')
    if length > room:
        raise UserError(f'{where}: record length {length} runs past the end of the file')
    return length


def read_record_at(reader: random_access.LocalReader | random_access.UrlReader, offset: int, size: int,
                   path: str | os.PathLike, check_data: bool = True) -> bytes:
    """The record at byte `offset` of the open TFRecord file `reader` (`random_access.open_reader`
    of `path`, `size` bytes long), its header's CRC and its length checked (so that no read runs
    past the file), and its data's CRC where `check_data` (in numpy, ~60 ms per MB on this
    machine's CPU): a damaged or truncated record is a ValueError naming the file and the offset.
    Thread-safe (the readers' `pread`)."""
    where = f'{path}: record at byte {offset}'
    length = _record_length(reader.pread(12, offset), size - offset - 16, where)
    data = reader.pread(length, offset + 12)
    footer = reader.pread(4, offset + 12 + length)
    if len(data) < length or len(footer) < 4:
        raise UserError(f'{where}: truncated record')
    if check_data and masked_crc(data) != struct.unpack('<I', footer)[0]:
        raise UserError(f'{where}: damaged record (CRC mismatch)')
    return data


def indexed_records(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """(byte offset, record) of each record of a TFRecord file (local or a URL), in order
    (`read_record_at`)."""
    reader = random_access.open_reader(path)
    try:
        size, offset = reader.size, 0
        while offset < size:
            data = read_record_at(reader, offset, size, path)
            yield offset, data
            offset += 16 + len(data)
    finally:
        reader.close()


def read_records(path: str | os.PathLike) -> Iterator[bytes]:
    """The records of a TFRecord file, lengths and CRCs checked: a damaged or truncated file is a
    ValueError naming it and the byte offset of the bad record."""
    return (record for _, record in indexed_records(path))


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError('a record holds a truncated protobuf')
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
        if pos > len(data):
            raise ValueError('a record holds a truncated protobuf')
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


FRAME_FEATURES = ('source', 'sequence', 'index', 'window', 'blurry', 'sharp')


def decode_frame(raw: dict[str, list]) -> dict:
    """A parsed record -> the frame `read_examples` yields; a ValueError if it is not one."""
    missing = [key for key in FRAME_FEATURES if not raw.get(key)]
    if missing:
        raise ValueError(f'a record lacks {", ".join(missing)}')
    blurry = decode_png(raw['blurry'][0])
    flow_shape = (raw['window'][0] - 1,) + blurry.shape[:2] + (2,)
    flow = lambda key: (np.frombuffer(raw[key][0], '<f2').reshape(flow_shape).astype(np.float32)
                        if key in raw else None)
    return {'source': raw['source'][0].decode(), 'sequence': raw['sequence'][0].decode(),
            'index': raw['index'][0], 'window': raw['window'][0],
            'blurry': blurry, 'sharp': decode_png(raw['sharp'][0]),
            'mmp': png_to_mmp(raw['mmp'][0]) if 'mmp' in raw else None,
            'flow_forward': flow('flow_forward'), 'flow_backward': flow('flow_backward')}


def read_examples(path: str | os.PathLike) -> Iterator[dict]:
    """Decoded frames of a shard: dicts with source, sequence, index, window, blurry, sharp
    (uint8 `[H, W, 3]`), mmp (float32 `[H, W, 1]` or None) and flow_forward, flow_backward
    (float32 `[N-1, H, W, 2]` or None). A record that is not a frame is a ValueError naming the
    file and the record."""
    for number, record in enumerate(read_records(path)):
        try:
            frame = decode_frame(parse_example(record))
        except ValueError as error:
            raise UserError(f'{path}: record {number}: {error}') from error
        yield frame
