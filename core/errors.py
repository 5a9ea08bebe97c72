"""User-facing errors.

Every error a user can fix is a :class:`LearnDropError` whose message is one line saying what
is wrong and what to do. The command line prints it and exits 2 (bad input) or 1 (failure);
the app shows it in a dialog. Anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "LearnDropError",
    "ConfigError",
    "DataError",
    "ModelError",
    "DeviceError",
    "CheckpointError",
    "TrainingError",
    "first_line",
]


class LearnDropError(Exception):
    """Base of all errors with a message meant for the user. ``exit_code`` is the CLI's."""

    exit_code = 2

    #: longer messages are cut in the middle (a 2 MB value echoed back helps no one)
    MAX_CHARS = 2000

    def __init__(self, message: str) -> None:
        text = " ".join(str(message).split())  # always one line
        if len(text) > self.MAX_CHARS:
            cut = len(text) - self.MAX_CHARS
            text = f"{text[:1400]} [... {cut:,} characters left out ...] {text[-500:]}"
        super().__init__(text)

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(LearnDropError):
    """An invalid setting. ``field`` is the dotted config path when known (for the GUI)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    @classmethod
    def combined(cls, source: str, errors: list[ConfigError]) -> ConfigError:
        """One error for every problem of ``source``, on one line (the first's field)."""
        if len(errors) == 1:
            return errors[0]
        parts = [e.message.removeprefix(f"{source}: ") for e in errors]
        return cls(f"{source} has {len(errors)} problems: " + "; ".join(parts),
                   field=errors[0].field)


class DataError(LearnDropError):
    """A data set that cannot be read or does not fit the model."""


class ModelError(LearnDropError):
    """An unknown model or a model that does not fit the data or the drop settings."""


class DeviceError(LearnDropError):
    """A device that was asked for but is not present, or ran out of memory."""


class CheckpointError(LearnDropError):
    """A checkpoint that is missing, damaged, not ours, or cannot be written."""


class TrainingError(LearnDropError):
    """Training could not go on (for example a NaN loss). Exit code 1."""

    exit_code = 1


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
