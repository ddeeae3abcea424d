"""tracefs discovery/mounting, kallsyms matching, kprobe naming."""

from __future__ import annotations

import os

import pytest

from openat.syscalls import BpfError, NotSupportedError
from openat.syscalls import libc
from openat.syscalls.kallsyms import find_symbol, lookup, open_syscall_function
from openat.syscalls.perf import kprobe_pmu_retprobe_bit, kprobe_pmu_type
from openat.syscalls.tracefs import _tracefs_mounts, kprobe_event_definition, kprobe_event_name, ensure_tracefs, find_tracefs, mount_tracefs, tracepoint_exists, tracepoint_id

SYNTHETIC_KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff816b7000 t do_sys_openat2.isra.0
ffffffff816b7100 t do_sys_openat2.cold
ffffffff816b7200 T do_sys_open
ffffffff816b7300 T do_sys_openat2_helper
ffffffff816b7400 t do_sys_open.constprop.0.isra.0
ffffffffc0000000 t do_sys_openat2\t[somemodule]
0000000000000000 D do_sys_openat2_table
"""


@pytest.fixture
def kallsyms(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text(SYNTHETIC_KALLSYMS)
    return str(path)


def test_suffixed_names_match_but_not_cold_or_longer_names(kallsyms):
    names = [s.name for s in lookup("do_sys_openat2", kallsyms)]
    assert names == ["do_sys_openat2", "do_sys_openat2.isra.0"]  # exact (module) first
    exact = lookup("do_sys_openat2", kallsyms)[0]
    assert exact.module == "somemodule" and exact.address == 0xFFFFFFFFC0000000
    assert [s.name for s in lookup("do_sys_open", kallsyms)] == ["do_sys_open", "do_sys_open.constprop.0.isra.0"]


def test_find_symbol_prefers_exact_and_skips_data(kallsyms, tmp_path):
    assert find_symbol("do_sys_open", kallsyms).name == "do_sys_open"
    only_suffixed = tmp_path / "k2"
    only_suffixed.write_text("ffffffff816b7000 t do_sys_openat2.isra.0\nffffffff816b7100 t do_sys_openat2.cold\n")
    assert find_symbol("do_sys_openat2", str(only_suffixed)).name == "do_sys_openat2.isra.0"
    assert find_symbol("do_sys_openat2_table", kallsyms) is None
    assert find_symbol("do_sys_openat2_table", kallsyms, functions_only=False).kind == "D"
    assert find_symbol("nonexistent", kallsyms) is None


def test_open_function_choice_for_old_and_new_kernels(tmp_path):
    old = tmp_path / "old"
    old.write_text("ffffffff816b7200 T do_sys_open\n")
    assert open_syscall_function(str(old)).name == "do_sys_open"
    new = tmp_path / "new"
    new.write_text("ffffffff816b7200 T do_sys_open\nffffffff816b7000 t do_sys_openat2.isra.0\n")
    assert open_syscall_function(str(new)).name == "do_sys_openat2.isra.0"
    empty = tmp_path / "empty"
    empty.write_text("")
    assert open_syscall_function(str(empty)) is None


def test_running_kernel_has_an_open_function():
    symbol = open_syscall_function()
    assert symbol is not None and symbol.name.split(".")[0] in ("do_sys_openat2", "do_sys_open")


def test_kprobe_event_naming():
    assert kprobe_event_definition("openat_42", "p_f_0", "do_sys_openat2.isra.0") == "p:openat_42/p_f_0 do_sys_openat2.isra.0"
    assert kprobe_event_definition("g", "e", "f", 16, retprobe=True) == "r:g/e f+16"
    assert kprobe_event_name("do_sys_openat2.isra.0", False, 3) == "p_do_sys_openat2_isra_0_3"


def test_kprobe_pmu_sysfs_parsing(tmp_path):
    assert kprobe_pmu_type(str(tmp_path / "none")) is None
    (tmp_path / "format").mkdir()
    (tmp_path / "type").write_text("8\n")
    (tmp_path / "format" / "retprobe").write_text("config:0\n")
    assert kprobe_pmu_type(str(tmp_path)) == 8
    assert kprobe_pmu_retprobe_bit(str(tmp_path)) == 0


def test_find_tracefs_from_a_mounts_file(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    # Nothing mounted per this file; the result then depends only on whether
    # a standard location already has events/, which is fine either way.
    result = find_tracefs(str(mounts))
    assert result is None or os.path.isdir(os.path.join(result, "events"))


@pytest.mark.usefixtures("root")
def test_mount_tracefs_for_real_in_a_scratch_directory(tmp_path):
    target = tmp_path / "tracing"
    target.mkdir()
    mount_tracefs(str(target))
    try:
        assert os.path.isdir(target / "events" / "syscalls")
        assert str(target) in _tracefs_mounts()
        assert tracepoint_exists("syscalls", "sys_enter_openat", tracefs=str(target))
        assert tracepoint_id("syscalls", "sys_enter_openat", tracefs=str(target)) > 0
    finally:
        libc.umount(str(target))


@pytest.mark.usefixtures("root")
def test_ensure_tracefs_and_tracepoint_lookup():
    root = ensure_tracefs()
    assert os.path.isdir(os.path.join(root, "events"))
    assert tracepoint_exists("syscalls", "sys_enter_openat")
    assert not tracepoint_exists("syscalls", "sys_enter_definitely_not_a_syscall")
    with open(os.path.join(root, "events/syscalls/sys_enter_openat/id")) as f:
        assert tracepoint_id("syscalls", "sys_enter_openat") == int(f.read())
    with pytest.raises(NotSupportedError):
        tracepoint_id("syscalls", "sys_enter_definitely_not_a_syscall")
    with pytest.raises(ValueError):
        tracepoint_exists("../..", "etc")


def test_mount_errors_are_specific(tmp_path):
    with pytest.raises(BpfError) as exc:
        mount_tracefs(str(tmp_path / "does-not-exist"))
    assert "tracefs" in str(exc.value)
