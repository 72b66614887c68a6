"""A small, strict CBOR (RFC 8949) codec for attestation documents (no third-party package).

`loads` decodes one complete item and refuses trailing bytes, reserved or malformed encodings,
nesting deeper than `MAX_DEPTH`, and lengths past the end of the input. It accepts
indefinite-length strings, arrays and maps, because AWS emits them (one of the real attestation
documents in /work/shared/fixtures has an indefinite-length payload map). Maps become Python dicts
(a duplicate key is an error); tags become `Tag`; simple values false/true/null/undefined become
False/True/None/UNDEFINED; floats are decoded.

`dumps` encodes (definite lengths, shortest heads) ints, bytes, str, list, dict, bool, None and
`Tag`: enough for COSE's Sig_structure and for test documents. Dict keys keep their insertion order
(AWS's documents are not canonically ordered, so neither are ours).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 16


class CborError(ValueError):
    pass


@dataclass(frozen=True)
class Tag:
    tag: int
    value: Any


class _Undefined:
    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = _Undefined()
_BREAK = object()


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CborError("truncated CBOR")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def head(self) -> tuple[int, int, int | None]:
        """(major type, additional info, argument or None for indefinite length)."""
        ib = self.take(1)[0]
        major, info = ib >> 5, ib & 0x1F
        if info < 24:
            return major, info, info
        if info in (24, 25, 26, 27):
            n = 1 << (info - 24)
            return major, info, int.from_bytes(self.take(n), "big")
        if info == 31:
            return major, info, None
        raise CborError(f"reserved additional information {info}")

    def item(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CborError("CBOR nested too deeply")
        major, info, arg = self.head()
        if major == 0:
            if arg is None:
                raise CborError("indefinite length on an integer")
            return arg
        if major == 1:
            if arg is None:
                raise CborError("indefinite length on an integer")
            return -1 - arg
        if major in (2, 3):
            if arg is None:
                chunks = []
                while True:
                    m, _, a = self.head()
                    if m == 7 and a is None:
                        break
                    if m != major or a is None:
                        raise CborError("bad chunk in an indefinite-length string")
                    chunks.append(self.take(a))
                raw = b"".join(chunks)
            else:
                raw = self.take(arg)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CborError("text string is not UTF-8") from e
        if major == 4:
            out = []
            if arg is None:
                while True:
                    v = self.item(depth + 1)
                    if v is _BREAK:
                        return out
                    out.append(v)
            if arg > len(self.data) - self.pos:
                raise CborError("truncated CBOR array")
            for _ in range(arg):
                v = self.item(depth + 1)
                if v is _BREAK:
                    raise CborError("unexpected break")
                out.append(v)
            return out
        if major == 5:
            result: dict = {}
            count = 0
            while arg is None or count < arg:
                if arg is not None and (arg - count) * 2 > len(self.data) - self.pos:
                    raise CborError("truncated CBOR map")
                k = self.item(depth + 1)
                if k is _BREAK:
                    if arg is None:
                        return result
                    raise CborError("unexpected break")
                v = self.item(depth + 1)
                if v is _BREAK:
                    raise CborError("map key without a value")
                try:
                    if k in result:
                        raise CborError("duplicate map key")
                    result[k] = v
                except TypeError as e:
                    raise CborError("unhashable map key") from e
                count += 1
            return result
        if major == 6:
            if arg is None:
                raise CborError("indefinite length on a tag")
            return Tag(arg, self.item(depth + 1))
        # major 7
        if arg is None:
            return _BREAK
        if info < 24 or info == 24:
            return {20: False, 21: True, 22: None, 23: UNDEFINED}.get(arg, ("simple", arg))
        raw = arg.to_bytes(1 << (info - 24), "big")
        if info == 25:
            return struct.unpack(">e", raw)[0]
        if info == 26:
            return struct.unpack(">f", raw)[0]
        return struct.unpack(">d", raw)[0]


def loads(data: bytes) -> Any:
    r = _Reader(bytes(data))
    v = r.item(0)
    if v is _BREAK:
        raise CborError("unexpected break")
    if r.pos != len(r.data):
        raise CborError(f"{len(r.data) - r.pos} trailing bytes after the CBOR item")
    return v


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([(major << 5) | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < (1 << (8 * size)):
            return bytes([(major << 5) | info]) + n.to_bytes(size, "big")
    raise CborError("integer too large for CBOR")


def dumps(v: Any) -> bytes:
    if v is False:
        return b"\xf4"
    if v is True:
        return b"\xf5"
    if v is None:
        return b"\xf6"
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        return _head(2, len(b)) + b
    if isinstance(v, str):
        b = v.encode("utf-8")
        return _head(3, len(b)) + b
    if isinstance(v, (list, tuple)):
        return _head(4, len(v)) + b"".join(dumps(x) for x in v)
    if isinstance(v, dict):
        return _head(5, len(v)) + b"".join(dumps(k) + dumps(x) for k, x in v.items())
    if isinstance(v, Tag):
        return _head(6, v.tag) + dumps(v.value)
    raise CborError(f"cannot encode {type(v).__name__}")
