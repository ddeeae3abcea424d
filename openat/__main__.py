"""``python -m openat``: the tracer."""

import sys

from .tracer.launch import main

sys.exit(main())
