"""Programs attached for real, writing to a real ring buffer."""

from __future__ import annotations

import mmap
import os
import select
import struct

import pytest

from openat.syscalls import (
    AttachType,
    LinkType,
    MapType,
    NotSupportedError,
    PermissionDeniedError,
    ProgType,
    map_create,
    link_create,
    prog_load,
    raw_tracepoint_open,
)
from openat.syscalls.btf import BtfKind, vmlinux_btf
from openat.syscalls.kallsyms import open_syscall_function
from openat.syscalls.tracefs import kprobe_events_available
from openat.syscalls.perf import (
    kprobe_pmu_type,
    perf_event_open_kprobe,
    perf_event_open_kprobe_legacy,
    perf_event_open_tracepoint,
)
from openat.syscalls.ringbuf import RingBuffer

from .programs import (
    NR_GETPID,
    NR_GETPPID,
    count_own_calls,
    return_imm,
    sequence_record,
    sys_enter_sequence_to_ringbuf,
    sys_enter_to_ringbuf,
)

pytestmark = pytest.mark.usefixtures("root")

RECORD = struct.Struct("=QQ")  # (syscall nr, tgid), as sys_enter_to_ringbuf writes it


@pytest.fixture
def events():
    with map_create(MapType.RINGBUF, 0, 0, 4096, name="t_events") as m:
        yield m


@pytest.fixture
def ring(events):
    with RingBuffer(events) as rb:
        yield rb


def _raw_tp_program(events, prog_type=ProgType.RAW_TRACEPOINT, **kwargs):
    program = sys_enter_to_ringbuf()
    return prog_load(
        program.encode({"events": events.fileno()}), prog_type, name="t_sys_enter", slot_sources=program.slot_sources(), **kwargs
    )


def _drain(ring) -> list[tuple[int, int]]:
    got: list[tuple[int, int]] = []
    ring.consume(lambda rec: got.append(RECORD.unpack(rec)))
    return got


def test_raw_tracepoint_to_ring_buffer_round_trip(events, ring):
    with _raw_tp_program(events) as prog, raw_tracepoint_open(prog, "sys_enter") as link:
        info = link.info()
        assert info.type == LinkType.RAW_TRACEPOINT and info.tp_name == "sys_enter"
        assert ring.poll(0) == 0  # nothing yet: returns at once
        for _ in range(3):
            os.getppid()
            os.getpid()  # reserved then discarded by the program
    got = []
    assert ring.poll(1000, lambda rec: got.append(RECORD.unpack(rec))) == 3
    assert got == [(NR_GETPPID, os.getpid())] * 3
    # 3 submitted + 3 discarded 24-byte records were consumed and published
    assert ring.consumer_pos == ring.producer_pos == 6 * 24
    assert ring.poll(0) == 0


def test_records_wrapping_the_ring_arrive_intact(events, ring):
    # 4096-byte ring, 24-byte records: record 170 straddles the end (its
    # payload is stitched from both ends of the data area, mapped once) and
    # record 341 has its header in the last 8 bytes, its payload at the start.
    received = []
    with _raw_tp_program(events) as prog, raw_tracepoint_open(prog, "sys_enter"):
        for _ in range(4):
            for _ in range(100):
                os.getppid()
            received += _drain(ring)
    assert ring.consumer_pos == 400 * 24 > 2 * 4096
    assert received == [(NR_GETPPID, os.getpid())] * 400
    assert NR_GETPID not in {nr for nr, _ in received}


def test_record_views_are_released_when_their_callback_returns(events, ring):
    kept = []
    read_in_callback = []

    def keep(rec):
        read_in_callback.append(RECORD.unpack(rec))
        kept.append(rec)

    with _raw_tp_program(events) as prog, raw_tracepoint_open(prog, "sys_enter"):
        os.getppid()
        os.getppid()
    assert ring.consume(keep) == 2
    assert read_in_callback == [(NR_GETPPID, os.getpid())] * 2
    for view in kept:
        with pytest.raises(ValueError):
            bytes(view)


def test_iteration_yields_one_batch_and_publishes_when_done(events, ring):
    with _raw_tp_program(events) as prog, raw_tracepoint_open(prog, "sys_enter"):
        os.getppid()
        os.getppid()
    records = [RECORD.unpack(rec) for rec in ring]
    assert records == [(NR_GETPPID, os.getpid())] * 2
    assert ring.consumer_pos == ring.producer_pos
    assert list(ring) == []


def test_iteration_releases_a_view_when_the_next_is_requested(events, ring):
    with _raw_tp_program(events) as prog, raw_tracepoint_open(prog, "sys_enter"):
        os.getppid()
        os.getppid()
    records = iter(ring)
    first = next(records)
    assert RECORD.unpack(first) == (NR_GETPPID, os.getpid())
    assert ring.consumer_pos == 0  # still being read: not given back to the kernel
    next(records)
    with pytest.raises(ValueError):
        bytes(first)
    assert ring.consumer_pos == 24
    records.close()  # stopping while holding the second record consumes it
    assert ring.consumer_pos == 48 == ring.producer_pos


def test_every_byte_of_records_wrapping_a_small_ring(events, ring):
    program = sys_enter_sequence_to_ringbuf()
    span = 56
    rounds, per_round = 14, 40  # 560 records; 40 pending at most, the ring holds 73
    received: list[bytes] = []
    with map_create(MapType.ARRAY, 4, 8, 1, name="counter") as counter, prog_load(
        program.encode({"events": events.fileno(), "counter": counter.fileno()}),
        ProgType.RAW_TRACEPOINT,
        name="t_sequence",
        slot_sources=program.slot_sources(),
    ) as prog, raw_tracepoint_open(prog, "sys_enter"):
        for round_number in range(rounds):
            for _ in range(per_round):
                os.getppid()
            if round_number % 2:  # views and in place, alternately: both see every wrap
                consumed = ring.consume(lambda rec: received.append(bytes(rec)))
            else:
                consumed = ring.consume(
                    lambda buffer, offset, length: received.append(bytes(buffer[offset : offset + length])),
                    in_place=True,
                )
            assert consumed == per_round
        total = rounds * per_round
        assert int.from_bytes(counter.lookup(0), "little") == total
    assert len(received) == total
    for seq, record in enumerate(received):
        assert record == sequence_record(seq), f"record {seq} at offset {seq * span % 4096}"
    assert ring.consumer_pos == ring.producer_pos == total * span


def test_failing_callback_still_consumes_its_record(events, ring):
    with _raw_tp_program(events) as prog, raw_tracepoint_open(prog, "sys_enter"):
        os.getppid()
        os.getppid()

    def explode(_rec):
        raise RuntimeError("consumer bug")

    with pytest.raises(RuntimeError):
        ring.consume(explode)
    assert ring.consumer_pos == 24  # the record that raised is not redelivered
    assert ring.consume() == 1


def test_epoll_fd_becomes_readable_with_data(events, ring):
    assert select.select([ring], [], [], 0)[0] == []
    with _raw_tp_program(events) as prog, raw_tracepoint_open(prog, "sys_enter"):
        os.getppid()
    assert select.select([ring], [], [], 1.0)[0] == [ring]
    assert ring.wait(0)


def _bpf_map_mappings() -> set[tuple[int, int]]:
    with open("/proc/self/maps") as maps:
        return {
            tuple(int(end, 16) for end in line.split()[0].split("-"))  # type: ignore[misc]
            for line in maps
            if line.rstrip().endswith("anon_inode:bpf-map")
        }


def test_data_area_is_mapped_once():
    # The kernel pre-populates every page mapped: a second copy of the data
    # area would cost as much resident memory as the ring itself.
    with map_create(MapType.RINGBUF, 0, 0, 1 << 20, name="t_mapped") as events:
        before = _bpf_map_mappings()
        with RingBuffer(events) as ring:
            added = _bpf_map_mappings() - before
            assert sorted(end - start for start, end in added) == [mmap.PAGESIZE, mmap.PAGESIZE + ring.size]


def test_ring_buffer_rejects_other_maps():
    with map_create(MapType.ARRAY, 4, 4, 1, name="t_notring") as m:
        with pytest.raises(ValueError):
            RingBuffer(m)


def test_ring_buffer_close_is_idempotent(events):
    rb = RingBuffer(events)
    rb.close()
    rb.close()
    assert rb.closed
    with pytest.raises(ValueError):
        rb.fileno()
    with pytest.raises(ValueError):
        rb.poll(0)


def test_tp_btf_with_btf_id_from_our_reader(events, ring):
    target = vmlinux_btf().find("btf_trace_sys_enter", BtfKind.TYPEDEF)
    kwargs = dict(expected_attach_type=AttachType.TRACE_RAW_TP, attach_btf_id=target)
    with _raw_tp_program(events, ProgType.TRACING, **kwargs) as prog:
        assert prog.info().attach_btf_id == target
        with link_create(prog, 0, AttachType.TRACE_RAW_TP):
            os.getppid()
        assert _drain(ring) == [(NR_GETPPID, os.getpid())]
        with raw_tracepoint_open(prog, None):
            os.getppid()
        assert _drain(ring) == [(NR_GETPPID, os.getpid())]
        os.getppid()  # detached: nothing more
        assert _drain(ring) == []


def _counter_program(counter, prog_type):
    program = count_own_calls()
    return prog_load(program.encode({"counter": counter.fileno()}), prog_type, name="t_count")


def test_syscall_tracepoint_via_perf_event_set_bpf():
    with map_create(MapType.ARRAY, 4, 8, 1, name="counter") as counter, _counter_program(
        counter, ProgType.TRACEPOINT
    ) as prog:
        with perf_event_open_tracepoint("syscalls", "sys_enter_getppid") as event:
            event.attach_bpf(prog)
            for _ in range(5):
                os.getppid()
            # DISABLE succeeds, but a tracepoint's BPF program keeps running
            # until the event is closed (the kernel registers the probe at
            # open): closing is what detaches.
            event.disable()
        os.getppid()  # closed: not counted
        assert int.from_bytes(counter.lookup(0), "little") == 5


def test_syscall_tracepoint_via_perf_link():
    with map_create(MapType.ARRAY, 4, 8, 1, name="counter") as counter, _counter_program(
        counter, ProgType.TRACEPOINT
    ) as prog:
        with perf_event_open_tracepoint("syscalls", "sys_enter_getppid") as event:
            with link_create(prog, event.fileno(), AttachType.PERF_EVENT) as link:
                assert link.info().type == LinkType.PERF_EVENT
                for _ in range(4):
                    os.getppid()
        assert int.from_bytes(counter.lookup(0), "little") == 4


def test_missing_tracepoint_is_not_supported():
    with pytest.raises(NotSupportedError) as exc:
        perf_event_open_tracepoint("syscalls", "sys_enter_no_such_call")
    assert "sys_enter_no_such_call" in str(exc.value)
    with prog_load(return_imm(0).encode(), ProgType.RAW_TRACEPOINT, name="t_raw") as prog:
        with pytest.raises(NotSupportedError):
            raw_tracepoint_open(prog, "no_such_tracepoint")


def test_fentry_is_refused_with_a_clear_error_or_works():
    """On the CI machine fentry is refused (EPERM); where it works, it attaches."""
    func = vmlinux_btf().func_id(open_syscall_function().name.split(".")[0])
    try:
        prog = prog_load(
            return_imm(0).encode(),
            ProgType.TRACING,
            name="t_fentry",
            expected_attach_type=AttachType.TRACE_FENTRY,
            attach_btf_id=func,
        )
    except (PermissionDeniedError, NotSupportedError) as exc:
        message = str(exc)
        assert "BPF_PROG_LOAD" in message and "trace_fentry" in message
        assert "\n" not in message
        if isinstance(exc, PermissionDeniedError):
            assert "CAP_" in message
        return
    with prog, raw_tracepoint_open(prog, None) as link:
        assert link.info().type == LinkType.TRACING


def _count_opens_via(event_factory):
    symbol = open_syscall_function()
    with map_create(MapType.ARRAY, 4, 8, 1, name="counter") as counter, _counter_program(
        counter, ProgType.KPROBE
    ) as prog:
        with event_factory(symbol.name) as event:
            event.attach_bpf(prog)
            for _ in range(3):
                os.close(os.open("/dev/null", os.O_RDONLY))
        assert int.from_bytes(counter.lookup(0), "little") >= 3


def test_kprobe_pmu_attaches_or_reports_missing_feature():
    if kprobe_pmu_type() is None:
        with pytest.raises(NotSupportedError) as exc:
            perf_event_open_kprobe("do_sys_openat2")
        assert "kprobe PMU" in str(exc.value)
        return
    _count_opens_via(perf_event_open_kprobe)


def test_legacy_kprobe_events_attach_and_clean_up_or_report_missing():
    if not kprobe_events_available():
        with pytest.raises(NotSupportedError) as exc:
            perf_event_open_kprobe_legacy("do_sys_openat2")
        assert "kprobe_events" in str(exc.value)
        return
    _count_opens_via(perf_event_open_kprobe_legacy)
    from openat.syscalls.tracefs import find_tracefs

    with open(os.path.join(find_tracefs(), "kprobe_events")) as f:
        assert f"openat_{os.getpid()}/" not in f.read()


def test_wakeups_only_sleeps_through_quiet_records_and_wakes_on_request(events):
    from .programs import NR_GETPID, NR_GETPPID, sys_enter_submit_with_flags

    program = sys_enter_submit_with_flags()
    with RingBuffer(events, wakeups_only=True) as ring, prog_load(
        program.encode({"events": events.fileno()}), ProgType.RAW_TRACEPOINT, name="t_wakeups", slot_sources=program.slot_sources()
    ) as prog, raw_tracepoint_open(prog, "sys_enter"):
        os.getpid()  # a record sent with BPF_RB_NO_WAKEUP
        assert ring.pending_bytes() > 0
        assert ring.wait(50) is False  # data is there, but nobody asked to wake us
        os.getppid()  # a record sent with BPF_RB_FORCE_WAKEUP
        assert ring.wait(5000) is True
        got = []
        ring.consume(lambda rec: got.append(struct.unpack("=Q", rec)[0]))
        assert got == [NR_GETPID, NR_GETPPID]
        # Drained and no new wakeup: the next wait sleeps to its timeout.
        assert ring.wait(20) is False


def test_level_triggered_wait_returns_while_data_is_pending(events, ring):
    from .programs import sys_enter_submit_with_flags

    program = sys_enter_submit_with_flags()
    with prog_load(
        program.encode({"events": events.fileno()}), ProgType.RAW_TRACEPOINT, name="t_wakeups", slot_sources=program.slot_sources()
    ) as prog, raw_tracepoint_open(prog, "sys_enter"):
        os.getpid()
        assert ring.wait(5000) is True  # the default mode reports pending data at once
