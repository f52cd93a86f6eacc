"""What soe prints on a terminal: text that comes from the landing zone, made harmless there."""

from __future__ import annotations

import re
import sys
from typing import TextIO

# C0 controls but tab and newline, DEL and C1: a file name or an id holding them (an escape sequence, a carriage
# return) would clear, recolour or overwrite the terminal it is printed on; they are shown as \xNN instead, as
# bytes that are not UTF-8 are in file names.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def say(text: object = "", *, file: TextIO | None = None, flush: bool = False) -> None:
    """``print`` of one text for the terminal, its control characters shown as ``\\xNN``."""
    print(terminal_safe(str(text)), file=file if file is not None else sys.stdout, flush=flush)
