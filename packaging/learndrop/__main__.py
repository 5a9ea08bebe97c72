"""``python -m learndrop`` is the ``learndrop`` command (also under ``torchrun -m learndrop``)."""

import sys

from learndrop._launch import main

sys.exit(main())
