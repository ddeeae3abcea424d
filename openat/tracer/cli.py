"""``python -m openat``: print one line per open on the machine, or of one command and its children."""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import sys
import time
from typing import Callable, List, Optional, Sequence

from .command import Command, CommandError
from .flags import FlagError, parse_flag_filter, split_flag_list
from .output import TIMESTAMP_MODES, Clock, JsonFormatter, TextFormatter, lost_record
from .probe import ATTACH_MODES, DEFAULT_RING_SIZE, Filters, ProbeOptions
from .signals import StopSignals, Stopped

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
  sudo openat -F                       # full paths, resolved in the kernel at the open
  sudo openat -F -- make -j4           # run make, trace it and every process it starts
  sudo openat --json --container 3f2a  # one container's opens, with cgroup and container id
  sudo openat --print-tid --flag-names # tid= after pid=, flags=O_WRONLY|O_CREAT
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


def _container_id(text: str) -> str:
    if not 1 <= len(text) <= 64 or text.strip("0123456789abcdef"):
        raise argparse.ArgumentTypeError(f"a container id is 1 to 64 lower-case hex digits, got {text!r}")
    return text


def _comm(text: str) -> bytes:
    raw = os.fsencode(text)
    if not 0 < len(raw) < 16:
        raise argparse.ArgumentTypeError(f"a comm is 1 to 15 bytes (the kernel cuts longer names), got {text!r}")
    return raw


USAGE = """\
openat [-p PID]... [-t TID]... [-u UID|USER]... [-n COMM] [-x] [-f FLAGS]... [--cgroup PATH]
              [--container ID] [--json] [-o FILE] [-F] [--print-tid] [--flag-names] [--timestamp MODE] [-d SECONDS]
              [--attach MODE] [--kprobe-interface MODE] [--filename-size BYTES] [--ring-size BYTES]
              [--dump] [-- CMD [ARGS...]]
       openat doctor"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> "None":  # type: ignore[override]
        """One line and exit status 2, without the usage block."""
        self.exit(EXIT_USAGE, f"openat: {message} (see openat --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="openat",
        usage=USAGE,
        description="Trace open(), openat(), openat2() and io_uring opens with eBPF, from pure Python:\n"
        "one line per open, with its result. With -- CMD, run CMD and trace it and every\n"
        "process it starts, from its first open, and exit with CMD's status.\n"
        "`openat doctor` checks what this kernel supports.",
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
    what.add_argument("--container", metavar="ID", type=_container_id,
                      help="only this container (docker, containerd, CRI-O, podman): its id or a unique prefix")

    show = parser.add_argument_group("output")
    show.add_argument("--json", action="store_true", help="one JSON object per line, with cgroup and container fields")
    show.add_argument("-o", "--output", metavar="FILE",
                      help="write the trace to FILE, not standard output (with -- CMD: apart from CMD's own output)")
    show.add_argument("-F", "--full-path", action="store_true",
                      help="absolute, normalised paths, resolved in the kernel at the open (from /proc where it cannot)")
    show.add_argument("--print-tid", action="store_true", help="add tid= after pid= (text)")
    show.add_argument("--flag-names", action="store_true", help="flags as names, flags=O_WRONLY|O_CREAT, not hex (text)")
    show.add_argument("--timestamp", choices=TIMESTAMP_MODES, default="utc", help="utc (default, RFC 3339), local, relative or none")
    show.add_argument("-d", "--duration", type=_seconds, metavar="SECONDS", help="stop after SECONDS")

    probe = parser.add_argument_group("probe")
    probe.add_argument(
        "--attach", choices=("auto",) + ATTACH_MODES, default="auto",
        help="attach point (default auto: the first that works of " + ", ".join(ATTACH_MODES)
        + "; tracepoint last on a kernel where it needs entry programs)",
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
        modes, mask = parse_flag_filter(name for spec in args.flag for name in split_flag_list(spec))
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
            container=args.container is not None,
            follow=bool(args.command),
        )
        return ProbeOptions(
            filename_size=args.filename_size, wakeup_mark=ring // 8, filters=filters,
            containers=args.json, full_path=args.full_path,
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


def main(argv: Optional[Sequence[str]] = None, *, keep_handlers: bool = False) -> int:
    """Entry point of ``openat`` and ``python -m openat``: returns the exit status.

    SIGINT and SIGTERM are handled from the first statement on (see
    :mod:`openat.tracer.signals`); ``keep_handlers`` leaves them installed
    on return (the process is about to exit: a late signal must not find
    the interpreter's handler there again).
    """
    stop = StopSignals()
    try:
        stop.install()
        return _run(list(sys.argv[1:] if argv is None else argv), stop)
    except Stopped as stopped:
        return stopped.status
    finally:
        stop.note_only()
        if not keep_handlers:
            stop.restore()


def _run(argv: List[str], stop: StopSignals) -> int:
    if argv[:1] == ["doctor"]:
        from .doctor import main as doctor_main

        try:
            return doctor_main(argv[1:])
        except Stopped as stopped:
            stopped.status = 128 + stopped.signum  # an interrupted check says nothing about this kernel
            raise
    argv, command = _split_command(argv)
    args = build_parser().parse_args(argv)
    args.command = command
    opened = _Opened()
    try:
        try:
            options = options_from(args)
            if command is not None and args.duration is not None:
                raise UsageError("-d and -- CMD exclude each other: with a command openat stops when it ends")
            if args.dump:
                from .attach import dump_probe

                return _write_all(dump_probe(args.attach, options))
            opened.open(args)
        except UsageError as error:
            _warn(f"{error} (see openat --help)")
            return EXIT_USAGE
        if opened.output is None:  # started with fd 1 closed: Python has no sys.stdout
            _warn("cannot write output: standard output is closed")
            return EXIT_FAILURE
        return _trace(args, options, opened, stop)
    finally:
        opened.close()


class _Opened:
    """What the command line names that must be opened before tracing: cgroups, the output file."""

    def __init__(self) -> None:
        self.cgroup_fd: Optional[int] = None
        self.container_fd: Optional[int] = None
        self.output = sys.stdout

    def open(self, args: argparse.Namespace) -> None:
        """UsageError when one cannot be opened."""
        if args.cgroup:
            self.cgroup_fd = open_cgroup(args.cgroup)
        container = _container_cgroup(args.container)
        if container:
            self.container_fd = open_cgroup(container)
        if args.output is not None:
            try:  # not inherited by -- CMD (Python's files are close-on-exec)
                self.output = open(args.output, "w", encoding="ascii", errors="backslashreplace")
            except OSError as error:
                raise UsageError(f"-o {args.output}: {error.strerror}") from None

    def close(self) -> None:
        for fd in (self.cgroup_fd, self.container_fd):
            if fd is not None:
                os.close(fd)
        if self.output is not sys.stdout:
            try:
                self.output.close()
            except OSError:
                pass  # the write error was reported already


def _split_command(argv: List[str]):
    """(openat's arguments, CMD or None): everything after the first ``--`` is the command."""
    if "--" not in argv:
        return argv, None
    at = argv.index("--")
    command = argv[at + 1 :]
    if not command:
        raise _usage_exit("-- must be followed by a command to run")
    return argv[:at], command


def _usage_exit(message: str) -> SystemExit:
    """What argparse does with bad input: one line on stderr, exit status 2."""
    print(f"openat: {message} (see openat --help)", file=sys.stderr, flush=True)
    return SystemExit(EXIT_USAGE)


def _container_cgroup(container: Optional[str]) -> Optional[str]:
    """The cgroup directory of ``--container``'s container; UsageError when no single one matches."""
    if container is None:
        return None
    from .containers import ContainerError, find_container

    try:
        return find_container(container)
    except ContainerError as error:
        raise UsageError(f"--container {container}: {error}") from None


def _warn(message: str) -> None:
    print(f"openat: {message}", file=sys.stderr, flush=True)


def _write_all(text: str) -> int:
    """Write ``text`` to stdout and flush it: EXIT_OK, or EXIT_FAILURE with one line when it cannot be written."""
    if sys.stdout is None:
        _warn("cannot write output: standard output is closed")
        return EXIT_FAILURE
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except OSError as error:
        _quiet_stdout()
        _warn(f"cannot write output: {error.strerror or error}")
        return EXIT_FAILURE
    return EXIT_OK


class OutputError(Exception):
    """The output cannot be written (a full disk, an I/O error): tracing stops."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.reason = error.strerror or str(error)


def _trace(args: argparse.Namespace, options: ProbeOptions, opened: _Opened, stop: StopSignals) -> int:
    from ..syscalls.errors import BpfError
    from .attach import Tracer, TracerError

    stop.note_only()  # from here on the kernel holds what we made: signals end the loop, never cut it short
    tracer = Tracer(
        attach=args.attach, options=options, ring_size=args.ring_size, report=_warn, cgroup_fd=opened.cgroup_fd,
        kprobe_interface=args.kprobe_interface, container_fd=opened.container_fd, transport=args.transport,
    )
    reader = _Reader(tracer, None, opened.output, args.json, stop)
    clock = Clock(args.timestamp)  # before attaching: "relative" counts from the start of tracing
    try:
        tracer.start()
        reader.set_formatter(_formatter(args, tracer, clock))
        if args.command is None:
            reader.run(time.monotonic() + args.duration if args.duration else None)
            return EXIT_OK
        command = _start_command(args.command, tracer, stop)
        return _follow(reader, command, stop)
    except BrokenPipeError:
        return EXIT_OK  # the reader went away (e.g. `| head`): stop as cat does
    except OutputError as error:
        _warn(f"cannot write output: {error.reason}")
        return EXIT_FAILURE
    except (TracerError, BpfError) as error:
        _warn(str(error).splitlines()[0])
        return EXIT_FAILURE
    except CommandError as error:
        _warn(str(error))
        return error.status
    finally:
        reader.finish()


def _start_command(argv: List[str], tracer, stop: StopSignals):
    """Fork CMD held before exec, follow its pid in the kernel, then let it run (unless a signal came first)."""
    command = Command(argv, stop.previous)
    try:
        tracer.follow(command.pid)
    except BaseException:
        command.abandon()
        raise

    def pass_on(signum: int) -> None:
        # A terminal's Ctrl-C reached the command already (same foreground process group).
        if stop.count == 1 and not (signum == signal.SIGINT and _in_terminal_foreground()):
            command.signal(signum)

    # Before the check and the release: a signal from here on reaches the
    # command, even one that comes while it is being released (an exec takes
    # long under emulation); the child waits with the default dispositions.
    stop.on_signal = pass_on
    if stop.received is not None:  # stopped while attaching: CMD never runs
        command.abandon()
        raise CommandError("stopped before the command started", 128 + stop.received)
    command.release()
    return command


def _follow(reader: "_Reader", command, stop: StopSignals) -> int:
    """Trace until the command ends (its status), or a second signal (128 + that signal)."""
    reader.run(None, until=lambda: command.poll() is not None or stop.count >= 2)
    status = command.poll()
    if status is None:
        return 128 + (stop.received or signal.SIGTERM)
    reader.drain(0)  # what its last opens sent is in the ring already
    reader.flush()
    return status


def _in_terminal_foreground() -> bool:
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def _formatter(args: argparse.Namespace, tracer, clock: Clock):
    """The formatter the arguments ask for, once the tracer knows whether the kernel resolves -F."""
    full_path = ("kernel" if tracer.kernel_paths else "proc") if args.full_path else None
    if args.json:
        from .containers import CgroupNames

        return JsonFormatter(clock, full_path=full_path, cgroups=CgroupNames())
    return TextFormatter(clock, full_path=full_path, show_tid=args.print_tid, flag_names=args.flag_names)


class _Reader:
    """Drains the tracer's ring into the output and says when events were lost."""

    def __init__(self, tracer, formatter, out, as_json: bool, stop: Optional[StopSignals] = None) -> None:
        self.tracer = tracer
        self.out = out
        self.output_ok = True  # False once a write failed: nothing more goes to ``out``
        self.as_json = as_json
        self.stop = stop if stop is not None else StopSignals()
        self.lost_reported = 0
        self.lines: List[str] = []
        if formatter is not None:
            self.set_formatter(formatter)

    def set_formatter(self, formatter) -> None:
        add = self.lines.append
        format_buffer = formatter.from_buffer

        def on_record(buffer: memoryview, offset: int, length: int) -> None:
            add(format_buffer(buffer, offset, length))

        self.on_record = on_record

    def run(self, deadline: Optional[float], until: Optional[Callable[[], bool]] = None) -> None:
        """Print what the probe sends until ``deadline`` (monotonic seconds), ``until()`` says so, or a
        stop signal (when ``until`` is None)."""
        started = time.monotonic()
        next_lost_check = started + LOST_REPORT_INTERVAL_S
        fast_until = started + STARTUP_POLL_S
        done = until if until is not None else lambda: self.stop.received is not None
        while not done():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            interval = STARTUP_POLL_MS if now < fast_until else POLL_TIMEOUT_MS
            timeout = interval if deadline is None else max(0, min(interval, int((deadline - now) * 1000)))
            self.drain(timeout)
            self.flush()
            if now >= next_lost_check:
                next_lost_check = now + LOST_REPORT_INTERVAL_S
                self.report_lost()

    def drain(self, timeout_ms: int) -> None:
        """Wait up to ``timeout_ms``, then write out what is waiting.

        Chunks of OUTPUT_CHUNK_LINES keep memory bounded through a long
        burst; DRAIN_LIMIT_RECORDS lets the lost-event check (and a stop
        signal) take effect under load too.
        """
        lines = self.lines
        drained = 0
        while drained < DRAIN_LIMIT_RECORDS:
            count = self.tracer.poll_records(self.on_record, timeout_ms=timeout_ms, limit=OUTPUT_CHUNK_LINES, in_place=True)
            if lines:
                lines.append("")
                self.write("\n".join(lines))
                lines.clear()
            if count < OUTPUT_CHUNK_LINES or self.stop.count >= (1 if self.stop.on_signal is None else 2):
                return
            drained += count
            timeout_ms = 0

    def write(self, text: str) -> None:
        """Write to the output; BrokenPipeError when its reader left, OutputError for any other failure."""
        try:
            self.out.write(text)
        except OSError as error:
            raise self._failed(error) from None

    def flush(self) -> None:
        try:
            self.out.flush()
        except OSError as error:
            raise self._failed(error) from None

    def _failed(self, error: OSError) -> Exception:
        """Stop writing to the output; the exception that says why."""
        self.output_ok = False
        self.lines.clear()
        if self.out is sys.stdout:
            _quiet_stdout()  # what is still buffered must not fail again at exit
        return error if isinstance(error, BrokenPipeError) else OutputError(error)

    def report_lost(self, *, total: Optional[int] = None, final: bool = False) -> None:
        """Say how many events were lost since the last report.

        While tracing, only news is reported; at exit the total always is.
        """
        total = self.tracer.lost_events() if total is None else total
        if total > self.lost_reported:
            if self.as_json and self.output_ok:
                self.write(lost_record(total - self.lost_reported, total) + "\n")
                self.flush()
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
            except (BrokenPipeError, OutputError):
                _warn(f"{lost} events lost")  # the output is gone, stderr still says it


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # stdout is not a file descriptor (an in-process test's capture): nothing to flush at exit
