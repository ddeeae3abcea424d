"""Makes the repository root importable so `bench` (not an installed package) resolves under plain `pytest` too."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
