"""``python -m openat.vm``: see :mod:`openat.vm.cli`."""

import sys

from .cli import main

sys.exit(main())
