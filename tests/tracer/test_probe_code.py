"""The generated probe: what the bytecode contains, without a kernel."""

import pytest

from openat.asm import disassemble
from openat.tracer.probe import ATTACH_MODES, Filters, ProbeOptions, build_probe
from openat.tracer.kernel_layout import discover_layout

FIELDS = {
    f"sys_{side}_{name}": ({"dfd": 16, "filename": 24, "flags": 32, "how": 32} if side == "enter" else {"ret": 16})
    for name in ("open", "openat", "openat2")
    for side in ("enter", "exit")
}


@pytest.fixture(params=["x86_64", "aarch64"])
def layout(request):
    base = discover_layout(None, None, machine=request.param)
    return base._replace(tracepoint_fields=FIELDS)


@pytest.mark.parametrize("mode", ATTACH_MODES)
def test_every_mode_builds_and_disassembles(layout, mode):
    programs = build_probe(mode, layout, ProbeOptions())
    assert programs
    for probe in programs:
        assert len(probe.name) <= 15
        text = disassemble(probe.program.encode({name: 3 for name in probe.program.map_names}))
        assert "exit" in text
        # Every slot knows the Python line that emitted it.
        assert all(source.startswith("probe.py:") for source in probe.program.slot_sources())


def test_arm64_has_no_open_syscall(layout):
    programs = build_probe("tracepoint", layout, ProbeOptions())
    targets = {probe.target for probe in programs}
    assert ("syscalls/sys_enter_open" in targets) == (layout.machine == "x86_64")


def count_calls(mode, layout, filters, helper):
    listing = "\n".join(p.program.listing() for p in build_probe(mode, layout, ProbeOptions(filters=filters)))
    return listing.count(helper)


def test_filters_only_add_code_when_asked(layout):
    assert count_calls("raw_tp", layout, Filters(), "bpf_get_current_comm") == 1  # the record's comm
    assert count_calls("raw_tp", layout, Filters(comm=b"cat"), "bpf_get_current_comm") == 2
    assert count_calls("raw_tp", layout, Filters(), "bpf_current_task_under_cgroup") == 0
    assert count_calls("raw_tp", layout, Filters(cgroup=True), "bpf_current_task_under_cgroup") == 1


def test_pid_filter_compares_each_pid(layout):
    listing = build_probe("tracepoint", layout, ProbeOptions(filters=Filters(pids=(1234, 5678))))[0].program.listing()
    assert "0x4d2" in listing and "0x162e" in listing


def test_failed_filter_tests_the_return_value(layout):
    plain = build_probe("raw_tp", layout, ProbeOptions())[-1].program.listing()
    failed = build_probe("raw_tp", layout, ProbeOptions(filters=Filters(failed_only=True)))[-1].program.listing()
    assert "s>=" not in plain and "s>=" in failed


@pytest.mark.parametrize("bad", [dict(pids=(-1,)), dict(uids=(2**32,)), dict(comm=b""), dict(comm=b"x" * 16)])
def test_filter_values_are_checked(bad):
    with pytest.raises(ValueError):
        Filters(**bad)


def test_raw_tracepoints_need_only_a_sys_exit_program(layout):
    for mode in ("tp_btf", "raw_tp"):
        (probe,) = build_probe(mode, layout, ProbeOptions())
        assert (probe.kind, probe.target) == (mode, "sys_exit")
        assert "bpf_map_update_elem" not in probe.program.listing()  # no per-thread hash


def test_arm64_reads_the_first_argument_from_orig_x0(layout):
    listing = build_probe("tp_btf", layout, ProbeOptions())[0].program.listing()
    if layout.machine == "aarch64":
        assert "(r9 + 0x110)" in listing  # orig_x0, where x0 survives the result
    else:
        assert "(r9 + 0x70)" in listing  # di


def test_wakeup_mark_is_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        ProbeOptions(wakeup_mark=3000)


def test_filename_size_bounds():
    with pytest.raises(ValueError, match="out of range"):
        ProbeOptions(filename_size=1)
    with pytest.raises(ValueError, match="out of range"):
        ProbeOptions(filename_size=4097)


def test_comm_filter_zeroes_the_comm_buffer_first(layout):
    # 6.1's bpf_get_current_comm does not pad with zeros (strscpy): the
    # 16-byte compare needs the tail zeroed before the call.
    listing = build_probe("kprobe", layout, ProbeOptions(filters=Filters(comm=b"cat")))[0].program.listing()
    lines = listing.splitlines()
    call = next(i for i, line in enumerate(lines) if "bpf_get_current_comm" in line)
    before = "\n".join(lines[max(0, call - 6) : call])
    assert "*(u64 *)(r10 - 0x50) = 0x0" in before and "*(u64 *)(r10 - 0x48) = 0x0" in before


def test_every_program_of_every_mode_has_its_own_name(layout):
    """bpftool shows 15 bytes of a name: no two programs may look alike there."""
    names = [probe.name for mode in ATTACH_MODES for probe in build_probe(mode, layout, ProbeOptions())]
    assert len(names) == len(set(names)), names
    assert all(len(name.encode()) <= 15 and name.startswith("openat_") for name in names), names


@pytest.mark.parametrize("field", ["pids", "tids", "uids"])
def test_ids_over_the_whole_u32_range_compile(layout, field):
    values = (0, 2**31 - 1, 2**31, 2**32 - 1)
    for mode in ATTACH_MODES:
        listing = "\n".join(p.program.listing() for p in build_probe(mode, layout, ProbeOptions(filters=Filters(**{field: values}))))
        # JMP32 compares: each value as the 32-bit immediate, 2**31 and up shown signed
        for shown in ("0x7fffffff", "-0x80000000", "-0x1"):
            assert f"if w1 == {shown} goto" in listing, (mode, shown)


def test_tracepoint_exit_programs_stand_alone_with_task_pt_regs(layout):
    from openat.tracer.kernel_layout import TaskLayout

    classic = build_probe("tracepoint", layout, ProbeOptions())
    assert any(p.target.startswith("syscalls/sys_enter_") for p in classic)
    task = TaskLayout(pid=1, tgid=2, comm=3)
    exit_only = build_probe("tracepoint", layout._replace(task=task, task_pt_regs=True), ProbeOptions())
    assert [p.target for p in exit_only] == [p.target for p in classic if p.target.startswith("syscalls/sys_exit_")]
    for probe in exit_only:
        listing = probe.program.listing()
        assert "bpf_task_pt_regs" in listing
        assert "bpf_map_lookup_elem" in listing and "bpf_map_update_elem" not in listing  # scratch only, no hash
    # Without a task layout (no BTF) the flag alone does not drop the entry programs.
    no_task = build_probe("tracepoint", layout._replace(task_pt_regs=True), ProbeOptions())
    assert [p.target for p in no_task] == [p.target for p in classic]


def test_auto_puts_tracepoint_before_the_raw_tracepoints_only_when_it_needs_no_entry_programs():
    from openat.tracer.probe import auto_order

    assert auto_order(True) == ("kprobe", "fentry", "tracepoint", "tp_btf", "raw_tp")
    assert auto_order(False) == ("kprobe", "fentry", "tp_btf", "raw_tp", "tracepoint")


@pytest.mark.parametrize("mode", ATTACH_MODES)
def test_uid_and_gid_come_from_the_helper_even_with_the_task_layout(layout, mode):
    """With BTF the task is read by plain loads, but never through task->cred: loading that pointer
    costs the verifier a by-name search of vmlinux BTF (~1 ms per program on 6.18)."""
    from openat.tracer.kernel_layout import TaskLayout

    with_task = layout._replace(task=TaskLayout(pid=0x10, tgid=0x14, comm=0x20))
    for probe in build_probe(mode, with_task, ProbeOptions()):
        listing = probe.program.listing()
        if "bpf_get_current_task_btf" not in listing:
            continue  # entry programs record no identity
        assert "bpf_get_current_uid_gid" in listing, probe.name
        assert "bpf_get_current_comm" not in listing, probe.name  # the comm is still loaded from the task
