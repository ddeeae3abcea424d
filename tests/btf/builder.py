"""A writer of tiny native-endian BTF blobs for the tests, laid out as pahole lays them out."""

from __future__ import annotations

import struct

from openat.btf import BtfKind


class BtfBuilder:
    """Writes a tiny native-endian BTF blob, the way pahole lays it out."""

    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self.types = bytearray()
        self.count = 0

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strings)
        self.strings += name.encode() + b"\0"
        return off

    def add(self, name: str, kind: BtfKind, size_or_type: int, items: list[tuple] = (), extra: bytes = b"", kflag=False) -> int:
        info = (int(kflag) << 31) | (kind << 24) | len(items)
        self.types += struct.pack("=III", self.s(name), info, size_or_type) + extra
        for item in items:
            self.types += struct.pack("=" + "I" * len(item), *item)
        self.count += 1
        return self.count

    def member(self, name: str, type_id: int, bit_offset: int, bits: int = 0) -> tuple:
        return (self.s(name), type_id, (bits << 24) | bit_offset if bits else bit_offset)

    def blob(self) -> bytes:
        header = struct.pack("=HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strings))
        return header + bytes(self.types) + bytes(self.strings)
