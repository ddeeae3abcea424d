"""``python -m openat``: print one line per open on the machine."""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import sys
import time
from typing import List, Optional, Sequence

from .flags import FlagError, parse_flag_filter
from .output import TIMESTAMP_MODES, Clock, JsonFormatter, TextFormatter, lost_record
from .probe import ATTACH_MODES, DEFAULT_RING_SIZE, Filters, ProbeOptions

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

LOST_REPORT_INTERVAL_S = 1.0  # at most one "events lost" line per interval
POLL_TIMEOUT_MS = 100  # the longest a quiet open waits before it is printed
OUTPUT_CHUNK_LINES = 2048  # lines written out together while draining
DRAIN_LIMIT_RECORDS = 1 << 16  # records per drain, so lost-event checks run under load too
# Records are sent without a wakeup until the ring fills past a mark, so a
# quiet open waits for the poll timer. Just after attach that timer would be
# most of the start-up time (the first event waited up to POLL_TIMEOUT_MS);
# polling often for a short while costs a few ms of CPU once.
STARTUP_POLL_MS = 2
STARTUP_POLL_S = 1.0

EXAMPLES = """\
examples:
  sudo openat                          # every open on the machine
  sudo openat --json                   # one JSON object per line
  sudo openat -p 1234 -p 5678          # only these processes
  sudo openat -u 1000 -x               # failed opens of uid 1000
  sudo openat -n cat                   # only processes whose comm is "cat"
  sudo openat -f O_WRONLY,O_CREAT      # write-only opens or creating opens
  sudo openat -f O_RDONLY              # read-only opens (O_RDONLY is 0, and works)
  sudo openat --cgroup /sys/fs/cgroup/unified/system.slice   # one cgroup v2 tree
  sudo openat -F                       # resolve relative names to full paths
  sudo openat -d 10 --timestamp relative   # ten seconds, seconds since start
  sudo openat --attach tracepoint      # force an attach point
  openat --dump -x -p 1                # the generated probe, filters included (no root)
  sudo openat doctor                   # what this kernel supports, with fixes
"""


class UsageError(Exception):
    """Bad command-line input: one line, exit status 2."""


def _size(text: str) -> int:
    """A byte count: 4096, 64k, 4M or 1G."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    suffix = text[-1:].lower()
    try:
        value = int(text[:-1]) * units[suffix] if suffix in units else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 4096, 64k, 4M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"duration must be positive, got {text!r}")
    return value


def _id(kind: str):
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be a number, got {text!r}") from None
        if not 0 <= value <= 0xFFFFFFFF:
            raise argparse.ArgumentTypeError(f"{kind} must be 0..4294967295, got {text!r}")
        return value

    parse.__name__ = kind
    return parse


def _user(text: str) -> int:
    """A uid, or a user name looked up in the password database."""
    if text.isdigit():
        return _id("uid")(text)
    if text.startswith("-"):
        raise argparse.ArgumentTypeError(f"uid must be 0..4294967295, got {text!r}")
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such user: {text!r}") from None


def _comm(text: str) -> bytes:
    raw = os.fsencode(text)
    if not 0 < len(raw) < 16:
        raise argparse.ArgumentTypeError(f"a comm is 1 to 15 bytes (the kernel cuts longer names), got {text!r}")
    return raw


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> "None":  # type: ignore[override]
        """One line and exit status 2, without the usage block."""
        self.exit(EXIT_USAGE, f"openat: {message} (see openat --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="openat",
        description="Trace open(), openat() and openat2() with eBPF, from pure Python: "
        "one line per open, with its result.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("which opens (filters run in the kernel)")
    what.add_argument("-p", "--pid", type=_id("pid"), action="append", default=[], help="only this process (repeatable)")
    what.add_argument("-t", "--tid", type=_id("tid"), action="append", default=[], help="only this thread (repeatable)")
    what.add_argument("-u", "--uid", type=_user, action="append", default=[], help="only this user, uid or name (repeatable)")
    what.add_argument("-n", "--name", type=_comm, metavar="COMM", help="only processes whose comm is exactly COMM")
    what.add_argument("-x", "--failed", action="store_true", help="only failed opens")
    what.add_argument(
        "-f", "--flag", action="append", default=[], metavar="FLAGS",
        help="only opens with one of these flags, e.g. O_WRONLY,O_CREAT (repeatable)",
    )
    what.add_argument("--cgroup", metavar="PATH", help="only processes in this cgroup v2 directory or below it")

    show = parser.add_argument_group("output")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.add_argument("-F", "--full-path", action="store_true", help="resolve relative names to absolute paths")
    show.add_argument("--timestamp", choices=TIMESTAMP_MODES, default="utc", help="utc (default, RFC 3339), local, relative or none")
    show.add_argument("-d", "--duration", type=_seconds, metavar="SECONDS", help="stop after SECONDS")

    probe = parser.add_argument_group("probe")
    probe.add_argument(
        "--attach", choices=("auto",) + ATTACH_MODES, default="auto",
        help="attach point (default auto: the first that works of " + ", ".join(ATTACH_MODES) + ")",
    )
    probe.add_argument(
        "--kprobe-interface", choices=("auto", "pmu", "tracefs"), default="auto",
        help="how --attach kprobe makes its probes: the perf kprobe PMU, tracefs kprobe_events, or auto (PMU, else tracefs)",
    )
    probe.add_argument(
        "--transport", choices=("auto", "ringbuf", "perf"), default="auto",
        help="how records reach openat: the BPF ring buffer, a perf event array (--ring-size per CPU), "
        "or auto (the ring buffer, else perf: kernels before 5.8)",
    )
    probe.add_argument("--dump", action="store_true", help="print the probe's annotated disassembly and exit")
    probe.add_argument(
        "--filename-size", type=int, default=ProbeOptions().filename_size, metavar="BYTES",
        help="bytes of each file name to capture, NUL included (default %(default)s, 2..4096)",
    )
    probe.add_argument(
        "--ring-size", type=_size, default=DEFAULT_RING_SIZE, metavar="BYTES",
        help=f"ring buffer size, a power of two ≥ 4096 (default {DEFAULT_RING_SIZE >> 20}M)",
    )
    return parser


def options_from(args: argparse.Namespace) -> ProbeOptions:
    """The probe options the arguments ask for; UsageError when they are wrong."""
    ring = args.ring_size
    if ring < 4096 or ring & (ring - 1):
        raise UsageError(f"--ring-size must be a power of two of at least 4096, got {ring}")
    try:
        modes, mask = parse_flag_filter(name for spec in args.flag for name in spec.split(","))
    except FlagError as error:
        raise UsageError(str(error)) from None
    try:
        filters = Filters(
            pids=tuple(dict.fromkeys(args.pid)),
            tids=tuple(dict.fromkeys(args.tid)),
            uids=tuple(dict.fromkeys(args.uid)),
            comm=args.name,
            failed_only=args.failed,
            access_modes=modes,
            flag_mask=mask,
            cgroup=args.cgroup is not None,
        )
        return ProbeOptions(
            filename_size=args.filename_size, wakeup_mark=ring // 8, filters=filters,
            perf_output=args.transport == "perf",  # for --dump; the tracer decides for auto
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def open_cgroup(path: str) -> int:
    """An fd on cgroup v2 directory ``path``; UsageError when it is not one."""
    if not os.path.isdir(path):
        raise UsageError(f"--cgroup {path}: no such directory")
    if not os.path.exists(os.path.join(path, "cgroup.procs")) or not os.path.exists(
        os.path.join(path, "cgroup.controllers")
    ):
        raise UsageError(f"--cgroup {path}: not a cgroup v2 directory (no cgroup.controllers)")
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``openat`` and ``python -m openat``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["doctor"]:
        from .doctor import main as doctor_main

        return doctor_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        options = options_from(args)
        if args.dump:
            from .attach import dump_probe

            sys.stdout.write(dump_probe(args.attach, options))
            return EXIT_OK
        cgroup_fd = open_cgroup(args.cgroup) if args.cgroup else None
    except UsageError as error:
        _warn(f"{error} (see openat --help)")
        return EXIT_USAGE
    try:
        return _trace(args, options, cgroup_fd)
    finally:
        if cgroup_fd is not None:
            os.close(cgroup_fd)


def _warn(message: str) -> None:
    print(f"openat: {message}", file=sys.stderr, flush=True)


class _Stop(Exception):
    """Raised by the SIGTERM handler so cleanup runs as for Ctrl-C."""


def _trace(args: argparse.Namespace, options: ProbeOptions, cgroup_fd: Optional[int]) -> int:
    from ..syscalls.errors import BpfError
    from .attach import Tracer, TracerError

    def on_sigterm(signum: int, frame: object) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    tracer = Tracer(
        attach=args.attach, options=options, ring_size=args.ring_size, report=_warn, cgroup_fd=cgroup_fd,
        kprobe_interface=args.kprobe_interface, transport=args.transport,
    )
    reader = _Reader(tracer, _formatter(args), sys.stdout, args.json)
    try:
        tracer.start()
        reader.run(time.monotonic() + args.duration if args.duration else None)
        return EXIT_OK
    except (KeyboardInterrupt, _Stop):
        return EXIT_OK
    except BrokenPipeError:
        _quiet_stdout()  # the reader went away (e.g. `| head`): stop as cat does
        return EXIT_OK
    except (TracerError, BpfError) as error:
        _warn(str(error).splitlines()[0])
        return EXIT_FAILURE
    finally:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut cleanup short
            reader.finish()
        finally:
            signal.signal(signal.SIGTERM, previous)


def _formatter(args: argparse.Namespace):
    from .paths import full_path

    clock = Clock(args.timestamp)
    path_of = full_path if args.full_path else None
    return (JsonFormatter if args.json else TextFormatter)(clock, path_of=path_of)


class _Reader:
    """Drains the tracer's ring into the output and says when events were lost."""

    def __init__(self, tracer, formatter, out, as_json: bool) -> None:
        self.tracer = tracer
        self.out = out
        self.as_json = as_json
        self.lost_reported = 0
        self.lines: List[str] = []
        add = self.lines.append
        format_buffer = formatter.from_buffer

        def on_record(buffer: memoryview, offset: int, length: int) -> None:
            add(format_buffer(buffer, offset, length))

        self.on_record = on_record

    def run(self, deadline: Optional[float]) -> None:
        """Print what the probe sends until ``deadline`` (monotonic seconds; None: until stopped)."""
        started = time.monotonic()
        next_lost_check = started + LOST_REPORT_INTERVAL_S
        fast_until = started + STARTUP_POLL_S
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            interval = STARTUP_POLL_MS if now < fast_until else POLL_TIMEOUT_MS
            timeout = interval if deadline is None else max(0, min(interval, int((deadline - now) * 1000)))
            self.drain(timeout)
            self.out.flush()
            if now >= next_lost_check:
                next_lost_check = now + LOST_REPORT_INTERVAL_S
                self.report_lost()

    def drain(self, timeout_ms: int) -> None:
        """Wait up to ``timeout_ms``, then write out what is waiting.

        Chunks of OUTPUT_CHUNK_LINES keep memory bounded through a long
        burst; DRAIN_LIMIT_RECORDS lets the lost-event check run under load.
        """
        lines = self.lines
        drained = 0
        while drained < DRAIN_LIMIT_RECORDS:
            count = self.tracer.poll_records(self.on_record, timeout_ms=timeout_ms, limit=OUTPUT_CHUNK_LINES, in_place=True)
            if lines:
                lines.append("")
                self.out.write("\n".join(lines))
                lines.clear()
            if count < OUTPUT_CHUNK_LINES:
                return
            drained += count
            timeout_ms = 0

    def report_lost(self, *, total: Optional[int] = None, final: bool = False) -> None:
        """Say how many events were lost since the last report.

        While tracing, only news is reported; at exit the total always is.
        """
        total = self.tracer.lost_events() if total is None else total
        if total > self.lost_reported:
            if self.as_json:
                self.out.write(lost_record(total - self.lost_reported, total) + "\n")
                self.out.flush()
            if not final:
                _warn(f"{total - self.lost_reported} events lost (ring buffer full), {total} in all; try a larger --ring-size")
        if final:
            _warn(f"{total} events lost" + ("; try a larger --ring-size" if total else ""))
        self.lost_reported = total

    def finish(self) -> None:
        """Detach and release everything, then report the lost events once more (if tracing began)."""
        lost = self.tracer.lost_events()
        self.tracer.close()
        if self.tracer.mode is not None:
            try:
                self.report_lost(total=lost, final=True)
            except BrokenPipeError:
                _quiet_stdout()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
