"""A Prometheus remote-write 1.0 client small enough to read: `WriteRequest` protobuf encoded by
hand (four message types, no generated code) and snappy block compression from `cramjam`.
Tests use it to push exactly the samples they want, including stale markers and bad input."""

import struct

import cramjam
import requests

# Prometheus' stale marker: a NaN with this exact bit pattern ends a series in lookback.
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(tag: int, payload: bytes) -> bytes:
    return _varint((tag << 3) | 2) + _varint(len(payload)) + payload


def _sample(timestamp_ms: int, value: float) -> bytes:
    return _varint((1 << 3) | 1) + struct.pack("<d", value) + _varint(2 << 3) + _varint(timestamp_ms)


def _labels(labels) -> bytes:
    pairs = sorted(labels.items()) if isinstance(labels, dict) else list(labels)
    return b"".join(
        _length_delimited(1, _length_delimited(1, name.encode()) + _length_delimited(2, value.encode()))
        for name, value in pairs
    )


def _exemplar(labels, value: float, timestamp_ms: int) -> bytes:
    return _labels(labels) + _varint((2 << 3) | 1) + struct.pack("<d", value) + _varint(3 << 3) + _varint(timestamp_ms)


def encode_series(labels, samples, exemplars=()) -> bytes:
    """One `TimeSeries`: `labels` a dict or a list of pairs (kept as given, so tests can send
    duplicates), `samples` a list of (timestamp_ms, value), `exemplars` a list of
    (labels, value, timestamp_ms)."""
    body = _labels(labels)
    body += b"".join(_length_delimited(2, _sample(t, v)) for t, v in samples)
    body += b"".join(_length_delimited(3, _exemplar(*exemplar)) for exemplar in exemplars)
    return body


def encode_request(series) -> bytes:
    """A snappy-compressed `WriteRequest` of (labels, samples) or (labels, samples, exemplars)."""
    plain = b"".join(_length_delimited(1, encode_series(*one)) for one in series)
    return bytes(cramjam.snappy.compress_raw(plain))


HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def push(url: str, series, headers=None, timeout=30) -> requests.Response:
    """POSTs one request to a remote-write endpoint (`.../api/v1/push` or `.../api/v1/write`)."""
    return requests.post(url, data=encode_request(series), headers={**HEADERS, **(headers or {})}, timeout=timeout)
