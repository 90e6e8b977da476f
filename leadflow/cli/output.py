"""What the commands print: human lines through Rich (no markup read from data), failures as one sentence."""
from __future__ import annotations

from rich.console import Console


class Failure(Exception):
    """A command's end with a message and an exit code (1: the work failed; 2: the input was refused)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def stdout() -> Console:
    """Rich on stdout: no markup, emoji codes or highlighting taken from data; long lines never cut."""
    return Console(soft_wrap=True, highlight=False, emoji=False, markup=False)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False, emoji=False, markup=False)


def say(line: str) -> None:
    stdout().print(line)


def fail_line(message: str) -> None:
    """`leadflow: <message>` on stderr, on one line, every phone number masked (R-REG-7)."""
    from leadflow.privacy import mask_phones_in_text

    text = " ".join(mask_phones_in_text(message).split())
    stderr().print(f"leadflow: {text}", style="red")
