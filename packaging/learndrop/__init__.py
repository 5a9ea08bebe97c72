"""Learn&Drop Studio: train CNNs faster by dropping layers that have stopped learning.

The engine lives in :mod:`learndrop.core` (no Qt), the desktop app in :mod:`learndrop.app`.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
