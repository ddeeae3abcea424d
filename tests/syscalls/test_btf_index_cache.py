"""The cached vmlinux BTF index: used only for the very file of this boot, never stale, never trusted blindly."""

from __future__ import annotations

import os
import struct

import pytest

from openat.btf import Btf
from openat.syscalls import btf as kbtf
from openat.syscalls.btf import VMLINUX_BTF, read_btf_file

from ..btf.builder import BtfBuilder
from openat.btf import BtfKind

needs_vmlinux = pytest.mark.skipif(not os.path.exists(VMLINUX_BTF), reason="kernel has no BTF")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fresh() -> Btf:
    """vmlinux_btf() as a new process would see it (no per-process cache)."""
    return kbtf.vmlinux_btf.__wrapped__(VMLINUX_BTF)


def small(count: int) -> Btf:
    b = BtfBuilder()
    for i in range(count):
        b.add(f"t{i}", BtfKind.INT, 4, extra=struct.pack("=I", 32))
    return Btf(b.blob())


def test_an_index_is_taken_back_only_by_the_same_bytes() -> None:
    source = small(200)
    len(source)
    state = source.index_state()
    same = small(200)
    assert same.adopt_index(state) and len(same) == 200 and same.find("t150") == source.find("t150")
    for other in (small(199), small(300), small(1)):
        assert not other.adopt_index(state)
        assert other.index_state() is None  # nothing changed: the walk is still to do
    assert len(small(199)) == 199


def test_a_damaged_index_is_refused() -> None:
    source = small(200)
    len(source)
    state = bytearray(source.index_state())
    for damage in (lambda s: s.__setitem__(0, s[0] + 1), lambda s: s.__setitem__(slice(8, 12), b"\xff\xff\x00\x00"),
                   lambda s: s.__delitem__(slice(-4, None)), lambda s: s.extend(b"\0\0\0")):
        copy = bytearray(state)
        damage(copy)
        btf = small(200)
        assert not btf.adopt_index(bytes(copy))
        assert len(btf) == 200


def test_an_index_is_not_taken_once_walked() -> None:
    btf = small(100)
    state = (len(btf), btf.index_state())[1]
    assert not btf.adopt_index(state)  # already indexed: nothing to adopt


@needs_vmlinux
def test_the_cache_is_written_and_used(cache_dir) -> None:
    first = fresh()
    assert first.index_state() is None
    count = len(first)
    assert kbtf.save_vmlinux_index(first)
    second = fresh()
    assert second.index_state() is not None  # indexed before any walk
    assert len(second) == count
    assert second.find("task_struct") == first.find("task_struct")
    assert not kbtf.save_vmlinux_index(second)  # unchanged: not written again


@needs_vmlinux
def test_a_stale_cache_is_never_used(cache_dir, monkeypatch) -> None:
    btf = fresh()
    len(btf)
    assert kbtf.save_vmlinux_index(btf)
    path = kbtf.index_cache_path()
    data = open(path, "rb").read()
    # Another boot: the key's boot id differs.
    real_key = kbtf._index_key(VMLINUX_BTF)
    boot = real_key.split()[0]
    other = data.replace(boot, b"0" * len(boot), 1)
    assert other != data
    open(path, "wb").write(other)
    assert fresh().index_state() is None
    # Another file on this boot (size differs): same.
    monkeypatch.setattr(kbtf, "_index_key", lambda p: real_key.replace(b" ", b" 1", 1))
    open(path, "wb").write(data)
    assert fresh().index_state() is None


@needs_vmlinux
def test_a_copy_of_the_kernel_btf_is_never_keyed(cache_dir, tmp_path) -> None:
    copy = tmp_path / "vmlinux"
    copy.write_bytes(open(VMLINUX_BTF, "rb").read())
    assert kbtf._index_key(str(copy)) is None  # not sysfs's own file: no cache, always walked
    btf = read_btf_file(str(copy))
    len(btf)
    assert not kbtf.save_vmlinux_index(btf, str(copy))


@needs_vmlinux
def test_the_cache_can_be_turned_off(monkeypatch) -> None:
    monkeypatch.setenv("OPENAT_CACHE_DIR", "")
    assert kbtf.index_cache_path() is None
    btf = fresh()
    len(btf)
    assert not kbtf.save_vmlinux_index(btf)


@needs_vmlinux
def test_an_index_another_user_could_write_is_not_used(cache_dir) -> None:
    btf = fresh()
    len(btf)
    assert kbtf.save_vmlinux_index(btf)
    path = kbtf.index_cache_path()
    assert fresh().index_state() is not None
    os.chmod(path, 0o666)  # writable by anyone: whoever wrote it, it is not ours to trust
    assert fresh().index_state() is None
    os.chmod(path, 0o600)
    if os.geteuid() != 0:
        pytest.skip("making the file another user's takes root (chown)")
    os.chown(path, os.geteuid() + 1, -1)
    try:
        assert fresh().index_state() is None
    finally:
        os.chown(path, os.geteuid(), -1)
    assert fresh().index_state() is not None
