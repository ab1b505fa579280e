"""Files written whole: now :mod:`chromalab._io` (every layer writes files whole, not only inference).

Kept for the modules that still import the old private names from here (video/pipeline.py: ``_umask_mode``).
"""

from __future__ import annotations

from .._io import atomic_write_bytes as _atomic_write_bytes
from .._io import umask_mode as _umask_mode

__all__ = ["_atomic_write_bytes", "_umask_mode"]
