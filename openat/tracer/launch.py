"""The entry point of the ``openat`` command and of ``python -m openat``.

It imports nothing but :mod:`signal` before it has set SIGINT to its
default action (unless it was inherited ignored: then it stays ignored
until the CLI installs its own handler): the interpreter's own SIGINT
handler would turn a Ctrl-C during the imports that follow into a
KeyboardInterrupt traceback. With the default action such a signal ends the
process with the signal's status, as SIGTERM does; from the first statement
of :func:`openat.tracer.cli.main` on, :mod:`openat.tracer.signals` handles both.
"""

import signal


def main() -> int:
    """Run the CLI with sys.argv; its handlers stay in place until the process exits."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    from .cli import main as cli_main

    return cli_main(keep_handlers=True)
