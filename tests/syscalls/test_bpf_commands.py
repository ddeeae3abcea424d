"""bpf() commands against the running kernel."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from openat.syscalls import (
    BPF_NOEXIST,
    BpfError,
    MapType,
    NotSupportedError,
    ProgType,
    VerifierError,
    map_create,
    enable_stats,
    prog_load,
    prog_get_fd_by_id,
    prog_ids,
    possible_cpus,
    prog_test_run,
    sanitize_name,
)
from openat.syscalls import attrs

from openat.asm import R0, R1, Program

from .programs import return_imm, uninitialised_read

pytestmark = pytest.mark.usefixtures("root")


def test_attr_layouts_match_uapi_header():
    # Offsets as compiled from linux/bpf.h with gcc (x86_64 and arm64 agree).
    assert ctypes.sizeof(attrs.MapCreateAttr) == 72
    assert attrs.MapCreateAttr.map_extra.offset == 64
    assert attrs.ProgLoadAttr.prog_name.offset == 48
    assert attrs.ProgLoadAttr.attach_btf_id.offset == 108
    assert attrs.ProgLoadAttr.core_relo_rec_size.offset == 136
    assert attrs.TestRunAttr.ctx_out.offset == 56
    assert attrs.TestRunAttr.batch_size.offset == 72
    assert ctypes.sizeof(attrs.ProgInfoStruct) == 232
    assert attrs.ProgInfoStruct.name.offset == 64
    assert attrs.ProgInfoStruct.run_time_ns.offset == 192
    assert attrs.ProgInfoStruct.attach_btf_id.offset == 224
    assert ctypes.sizeof(attrs.MapInfoStruct) == 88
    assert ctypes.sizeof(attrs.LinkInfoStruct) == 48


def test_sanitize_name():
    assert sanitize_name("openat-probe:v2") == b"openat_probe_v2"
    assert sanitize_name("a" * 40) == b"a" * 15
    assert sanitize_name("ok.name_1") == b"ok.name_1"


def test_hash_map_roundtrip():
    with map_create(MapType.HASH, 4, 8, 16, name="t_hash") as m:
        assert m.lookup(1) is None
        m.update(1, (0x1122334455667788).to_bytes(8, "little"))
        m.update(2, 7)
        assert m.lookup(1) == (0x1122334455667788).to_bytes(8, "little")
        assert m.lookup(b"\x02\x00\x00\x00") == (7).to_bytes(8, "little")
        with pytest.raises(BpfError) as exc:
            m.update(2, 9, BPF_NOEXIST)
        assert exc.value.errno == errno.EEXIST
        assert sorted(m.keys()) == [(1).to_bytes(4, "little"), (2).to_bytes(4, "little")]
        first = m.next_key()
        second = m.next_key(first)
        assert {first, second} == {(1).to_bytes(4, "little"), (2).to_bytes(4, "little")}
        assert m.next_key(second) is None
        assert m.delete(1) is True
        assert m.delete(1) is False
        assert list(m.keys()) == [(2).to_bytes(4, "little")]
        with pytest.raises(ValueError):
            m.lookup(b"\x01")


def test_percpu_array_lookup_splits_per_cpu():
    with map_create(MapType.PERCPU_ARRAY, 4, 8, 1, name="t_percpu") as m:
        values = m.lookup_percpu(0)
        assert len(values) == possible_cpus()
        assert all(v == bytes(8) for v in values)


def test_map_info_reports_name_and_geometry():
    with map_create(MapType.ARRAY, 4, 16, 3, name="openat-map!") as m:
        info = m.info()
        assert info.name == "openat_map_"
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (MapType.ARRAY, 4, 16, 3)
        assert info.type_name == "array"
        assert info.id > 0


def test_map_create_errors_are_specific():
    with pytest.raises(BpfError) as exc:
        map_create(MapType.ARRAY, 4, 0, 1, name="bad")  # zero value size
    assert exc.value.errno == errno.EINVAL
    assert "BPF_MAP_CREATE" in str(exc.value) and "'bad'" in str(exc.value)
    with pytest.raises(NotSupportedError):
        map_create(200, 4, 4, 1, name="future")


def test_close_is_idempotent_and_context_manager_closes():
    m = map_create(MapType.ARRAY, 4, 4, 1, name="t_close")
    fd = m.fileno()
    m.close()
    m.close()
    assert m.closed
    with pytest.raises(ValueError):
        m.fileno()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_load_and_test_run_socket_filter():
    with prog_load(return_imm(42).encode(), ProgType.SOCKET_FILTER, name="t_ret42") as prog:
        retval, data_out, duration = prog_test_run(prog, data_in=bytes(range(64)), repeat=3)
        assert retval == 42
        # The packet comes back; the kernel clears the Ethernet header of
        # socket-filter runs, so only the payload after it is compared.
        assert len(data_out) == 64
        assert data_out[14:] == bytes(range(14, 64))
        assert duration >= 0
        info = prog.info()
        assert info.name == "t_ret42"
        assert info.type == ProgType.SOCKET_FILTER
        assert info.verified_insns == 2


def test_test_run_raw_tracepoint_with_context():
    p = Program()
    p.ldxdw(R0, R1, 8)  # returns the second context word we pass in
    p.exit()
    with prog_load(p.encode(), ProgType.RAW_TRACEPOINT, name="t_ctx") as prog:
        ctx = (1).to_bytes(8, "little") + (0x5A5A).to_bytes(8, "little")
        assert prog.test_run(ctx_in=ctx).retval == 0x5A5A


def test_run_stats_counted_when_enabled():
    with prog_load(return_imm(0).encode(), ProgType.SOCKET_FILTER, name="t_stats") as prog:
        with enable_stats():
            prog_test_run(prog, data_in=bytes(64), repeat=5)
        info = prog.info()
        assert info.run_cnt == 5
        assert info.run_time_ns > 0


def test_verifier_error_is_annotated_with_python_sources():
    program = uninitialised_read()
    sources = program.slot_sources()
    assert sources[0].startswith("programs.py:")  # the DSL line that emitted r0 = r2
    with pytest.raises(VerifierError) as exc:
        prog_load(program.encode(), ProgType.SOCKET_FILTER, name="t_bad", slot_sources=sources)
    err = exc.value
    assert err.errno == errno.EACCES
    assert "R2 !read_ok" in err.log
    assert f"{sources[0]}: 0: (bf) r0 = r2" in err.annotated_log
    assert f"{sources[0]}: 0: (bf) r0 = r2" in str(err)
    assert str(err).splitlines()[0] == err.summary
    assert "R2 !read_ok" in err.summary


def test_verifier_log_buffer_grows_until_complete():
    with pytest.raises(VerifierError) as exc:
        prog_load(uninitialised_read().encode(), ProgType.SOCKET_FILTER, name="t_grow", log_size=128)
    err = exc.value
    # 128 bytes cannot hold the whole log: it only ends complete (first
    # instruction and the final statistics both present) if the loader grew
    # the buffer and retried.
    assert err.log_buffer_size > 128
    assert len(err.log) > 128
    assert "0: (bf) r0 = r2" in err.log
    assert "processed 1 insns" in err.log
    assert not err.truncated


def test_log_level_keeps_log_of_successful_load():
    with prog_load(return_imm(1).encode(), ProgType.SOCKET_FILTER, name="t_log", log_level=1) as prog:
        assert "processed 2 insns" in prog.verifier_log


def test_bad_code_length_rejected_before_the_kernel():
    with pytest.raises(ValueError):
        prog_load(b"\x95" * 7, ProgType.SOCKET_FILTER, name="t_len")


def test_prog_id_walk_finds_program_until_closed():
    prog = prog_load(return_imm(0).encode(), ProgType.SOCKET_FILTER, name="t_walk")
    prog_id = prog.id
    assert prog_id in set(prog_ids())
    with prog_get_fd_by_id(prog_id) as again:
        assert again.name == "t_walk"
        assert again.info().id == prog_id
    prog.close()
    assert prog_id not in set(prog_ids())
    with pytest.raises(BpfError) as exc:
        prog_get_fd_by_id(prog_id)
    assert exc.value.errno == errno.ENOENT


def test_link_id_walk_and_fd_by_id():
    from openat.syscalls import link_get_fd_by_id, link_ids, raw_tracepoint_open

    with prog_load(return_imm(0).encode(), ProgType.RAW_TRACEPOINT, name="t_link") as prog:
        link = raw_tracepoint_open(prog, "sys_enter")
        info = link.info()
        assert info.prog_id == prog.id and info.tp_name == "sys_enter"
        assert info.id in set(link_ids())
        with link_get_fd_by_id(info.id) as again:
            assert again.info().prog_id == prog.id
        link.close()
        assert info.id not in set(link_ids())


def test_map_ids_of_a_program():
    from openat.syscalls import map_get_fd_by_id

    with map_create(MapType.ARRAY, 4, 8, 1, name="counter") as counter:
        from .programs import count_own_calls

        program = count_own_calls()
        with prog_load(program.encode({"counter": counter.fileno()}), ProgType.RAW_TRACEPOINT, name="t_maps") as prog:
            assert prog.info().map_ids == (counter.id,)
            with map_get_fd_by_id(counter.id) as same:
                assert (same.name, same.value_size) == ("counter", 8)


def test_unprivileged_process_gets_permission_error_naming_capabilities():
    from openat.syscalls import PermissionDeniedError

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop to nobody, try, report through the pipe, never return into pytest
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                map_create(MapType.ARRAY, 4, 4, 1, name="t_unpriv").close()
                report = "CREATED"
            except PermissionDeniedError as exc:
                report = f"{type(exc).__name__} {exc.errno} {exc}"
            except BaseException as exc:
                report = f"OTHER {type(exc).__name__} {exc}"
            os.write(write_end, report.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    os.waitpid(pid, 0)
    if report == "CREATED":
        with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
            assert f.read().strip() == "0"  # only possible where unprivileged BPF is allowed
        return
    assert report.startswith("PermissionDeniedError 1 BPF_MAP_CREATE"), report
    assert "needs root, or CAP_BPF + CAP_PERFMON" in report
