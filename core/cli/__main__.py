"""``python -m learndrop.core.cli``: the ``learndrop`` command."""

import sys

from ._main import main

sys.exit(main())
