"""Start-up behaviour of the CLI and the lazy imports that keep launching cheap (no timings here)."""

from __future__ import annotations

import subprocess
import sys

import openat.tracer.attach
from openat.tracer import cli

from ..support import make_event


class FakeTracer:
    """Stands in for Tracer: records the poll timeouts, advances a fake clock by them."""

    instances: list["FakeTracer"] = []

    def __init__(self, *args: object, stop_after_s: float = 1.5, **kwargs: object) -> None:
        self.mode = None
        self.timeouts: list[int] = []
        self.stop_after_s = stop_after_s
        FakeTracer.instances.append(self)

    def start(self) -> str:
        self.mode = "fake"
        return self.mode

    def poll_records(self, on_record, timeout_ms: int = 100, limit=None, *, in_place: bool = False) -> int:
        self.timeouts.append(timeout_ms)
        Clock.now += max(timeout_ms, 0.1) / 1000  # a real poll(0) takes some time too
        if Clock.now - Clock.started > self.stop_after_s:
            raise KeyboardInterrupt
        return 0

    def lost_events(self) -> int:
        return 0

    def close(self) -> None:
        pass


class Clock:
    started = now = 1000.0

    @staticmethod
    def monotonic() -> float:
        return Clock.now


def run_cli(monkeypatch, args: list[str]) -> list[int]:
    Clock.now = Clock.started
    FakeTracer.instances.clear()
    monkeypatch.setattr(openat.tracer.attach, "Tracer", FakeTracer)
    monkeypatch.setattr(cli.time, "monotonic", Clock.monotonic)
    assert cli.main(args) == cli.EXIT_OK
    return FakeTracer.instances[0].timeouts


def test_polls_often_just_after_attach_then_at_the_normal_interval(monkeypatch, capsys):
    timeouts = run_cli(monkeypatch, [])
    fast = timeouts.index(cli.POLL_TIMEOUT_MS)
    assert set(timeouts[:fast]) == {cli.STARTUP_POLL_MS}
    assert set(timeouts[fast:]) == {cli.POLL_TIMEOUT_MS}
    assert abs(fast * cli.STARTUP_POLL_MS - cli.STARTUP_POLL_S * 1000) <= cli.STARTUP_POLL_MS


def test_duration_still_caps_the_poll_timeout(monkeypatch, capsys):
    timeouts = run_cli(monkeypatch, ["-d", "1.25"])
    assert max(timeouts) <= cli.POLL_TIMEOUT_MS
    assert sum(timeouts) <= 1250 + cli.STARTUP_POLL_MS  # stops at the deadline, not a full interval later
    assert timeouts[0] == cli.STARTUP_POLL_MS


def test_tracer_path_does_not_import_what_it_does_not_use():
    # The text assembler, disassembler, difflib and subprocess cost start-up
    # and the tracer never needs them; a stray eager import would bring them back.
    code = (
        "import sys, openat.tracer.cli, openat.tracer.attach, openat.tracer.paths, openat.syscalls.errors\n"
        "banned = ['openat.asm.text', 'openat.asm.disasm', 'openat.asm.sequences', 'difflib', 'subprocess',"
        " 'openat.syscalls.kallsyms', 'dataclasses', 'ast']\n"
        "print(' '.join(m for m in banned if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_lazy_asm_names_still_resolve():
    import openat.asm as asm

    code = asm.assemble("r0 = 0\nexit\n")
    assert "exit" in asm.disassemble(code)
    assert asm.text.assemble is asm.assemble  # the submodule, as before the lazy imports
    assert callable(asm.zero_stack) and callable(asm.format_instruction)
    assert set(asm.__all__) <= set(dir(asm))


class BurstTracer(FakeTracer):
    """Has 2.5 chunks of records waiting at the first poll, then none."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        from openat.tracer.records import encode_event

        self.waiting = int(cli.OUTPUT_CHUNK_LINES * 2.5)
        self.record = encode_event(make_event(tid=1, pid=1, uid=0, flags=0, comm=b"burst", filename=b"/burst"))

    def poll_records(self, on_record, timeout_ms: int = 100, limit=None, *, in_place: bool = False) -> int:
        count = super().poll_records(on_record, timeout_ms, limit)
        assert in_place
        count = min(limit, self.waiting)
        self.waiting -= count
        for _ in range(count):
            on_record(memoryview(self.record), 0, len(self.record))
        return count


def test_a_burst_drains_in_chunks_without_waiting_between_them(monkeypatch, capsys):
    Clock.now = Clock.started
    FakeTracer.instances.clear()
    monkeypatch.setattr(openat.tracer.attach, "Tracer", BurstTracer)
    monkeypatch.setattr(cli.time, "monotonic", Clock.monotonic)
    assert cli.main(["--timestamp", "none"]) == cli.EXIT_OK
    timeouts = FakeTracer.instances[0].timeouts
    # the first poll waits; the next chunks are taken at once; then it waits again
    assert timeouts[:4] == [cli.STARTUP_POLL_MS, 0, 0, cli.STARTUP_POLL_MS]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == int(cli.OUTPUT_CHUNK_LINES * 2.5)
    assert set(lines) == {"pid=1 uid=0 flags=0x0 comm=burst file=/burst ret=3"}
