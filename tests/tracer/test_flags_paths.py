"""Flag names and --full-path resolution (no kernel needed)."""

import os

import pytest

from openat.tracer.flags import FlagError, describe_flags, flag_bits, parse_flag_filter
from openat.tracer.paths import full_path, resolve
from openat.tracer.records import OpenEvent

from ..support import make_event


def test_access_modes_are_values_not_bits():
    assert parse_flag_filter(["O_RDONLY"]) == ((0,), 0)
    assert parse_flag_filter(["O_WRONLY", "O_RDWR"]) == ((1, 2), 0)


def test_other_flags_form_a_mask_and_names_are_forgiving():
    modes, mask = parse_flag_filter(["o_creat", "TRUNC", " O_EXCL "], machine="x86_64")
    assert modes == () and mask == 0o100 | 0o1000 | 0o200


def test_kernel_values_differ_by_machine():
    assert flag_bits("x86_64")["O_DIRECTORY"] == 0o200000
    assert flag_bits("aarch64")["O_DIRECTORY"] == 0o40000
    assert flag_bits("x86_64")["O_LARGEFILE"] == 0o100000  # libc says 0


def test_unknown_flag_names_the_known_ones():
    with pytest.raises(FlagError, match="unknown open flag 'O_FROB'.*O_CREAT"):
        parse_flag_filter(["O_FROB"])


def test_describe_flags():
    assert describe_flags(0o1101, machine="x86_64") == "O_WRONLY|O_CREAT|O_TRUNC"
    assert describe_flags(0, machine="x86_64") == "O_RDONLY"


def event(name: bytes, dfd: int = -100, pid: int = 0, tid: int = 0) -> OpenEvent:
    """An open of ``name`` relative to ``dfd`` by ``pid``/``tid`` (default: this process)."""
    pid = pid or os.getpid()
    return make_event(filename=name, dfd=dfd, pid=pid, tid=tid or pid)


def test_absolute_names_are_kept():
    assert resolve(event(b"/etc/hosts")) == b"/etc/hosts"


def test_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve(event(b"file")) == os.fsencode(tmp_path) + b"/file"


def test_relative_to_dir_fd(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert resolve(event(b"x", dfd=fd)) == os.fsencode(tmp_path) + b"/x"
    finally:
        os.close(fd)


def test_unresolvable_names_stay_relative():
    gone = event(b"rel", pid=2**22 + 12345)  # no such process
    assert resolve(gone) is None
    assert full_path(gone) == b"rel"
    read_fd, write_fd = os.pipe()  # a dfd that is not a directory
    try:
        assert resolve(event(b"rel", dfd=read_fd)) is None
    finally:
        os.close(read_fd)
        os.close(write_fd)
