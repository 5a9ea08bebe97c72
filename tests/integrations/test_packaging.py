"""The integrations stay optional: core and the command line load none of them."""

from __future__ import annotations

import subprocess
import sys


def test_core_and_cli_import_no_integration() -> None:
    code = ("import sys, learndrop.core, learndrop.core.cli, learndrop.integrations\n"
            "from learndrop.core.cli import _main\n"
            "_main._parser()\n"
            "found = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'lightning', 'pytorch_lightning', 'tensorboard', 'timm'} "
            "or m.startswith('learndrop.integrations.'))\n"
            "print(found)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
