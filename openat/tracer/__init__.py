"""The openat tracer: one line per open() on the machine, built on the toolkit below it.

``probe`` builds the BPF programs with :mod:`openat.asm` (``pathwalk`` emits
``-F``'s directory walk); ``schema`` defines the records (``_layout`` is
generated from it), ``records`` decodes them, ``output`` turns them into
escaped text or JSON (``paths``, ``flags`` and ``containers`` name what the
records hold); ``kernel_layout`` reads the offsets the probe needs;
``attach`` loads and attaches through :mod:`openat.link`, falling back from
one attach point to the next; ``launch`` is the entry point, ``cli`` and
``doctor`` are the commands, ``signals`` stops them cleanly and ``command``
runs ``-- CMD``.
"""
