"""Attach points, one module per hook; each ``attach()`` returns a :class:`Link`.

``kprobe`` (PMU or tracefs ``kprobe_events``), ``tracepoint``,
``raw_tracepoint``, ``tracing`` (fentry, fexit, tp_btf), and the network
hooks ``xdp`` and ``tc`` (which need pyroute2, imported by their attach):
``from openat.link import kprobe; kprobe.attach(program, "do_sys_openat2")``.
``Link.close()`` removes exactly what attaching added.
"""

from .link import Closable, Link

__all__ = ["Closable", "Link"]
