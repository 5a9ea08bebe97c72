"""Learn&Drop inside the tools people already train with, each an optional extra.

- :mod:`learndrop.integrations.lightning` - ``LearnDropCallback`` for a PyTorch Lightning
  ``Trainer`` (``pip install learndrop[lightning]``);
- :mod:`learndrop.integrations.tensorboard` - ``TensorBoardCallback``: scores, drops,
  savings, loss and accuracy live in TensorBoard (``pip install learndrop[tensorboard]``);
  ``learndrop train --tensorboard DIR`` uses it;
- :mod:`learndrop.integrations.timm` - timm models with block-level units
  (``pip install learndrop[timm]``); ``learndrop train --model timm:NAME`` uses it.

This package imports none of them: import the module you use. ``learndrop.core`` never
imports this package (checked by import-linter); the command line reaches it through entry
points (``learndrop.callbacks``, ``learndrop.models``).
"""

__all__: list[str] = []
