"""Text that came from a submission, made safe for where it goes: terminals and logs, spreadsheets.

Exception messages, layer and model names, history keys, file names and cell outputs are the student's to choose.
On a terminal or in a log, a control character is a command: ESC and the C1 CSI (U+009B) start the escape
sequences that retitle a window, clear the screen or rewrite the line an instructor reads. In a spreadsheet, a
cell that starts with `=`, `+`, `-` or `@` is a formula (OWASP, "CSV injection"). HTML needs neither: jinja2
autoescapes it. These functions are pure; callers apply them where text leaves dlgrade.
"""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 except tab and newline, DEL, C1
_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone half of a pair: no terminal or UTF-8 file can take it
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list for CSV injection


def plain_text(text: str) -> str:
    """`text` without control characters (newline and tab kept) and with lone surrogates replaced by U+FFFD,
    for terminals and log files. A carriage return goes too: it rewrites the line it ends."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def spreadsheet_cell(value):
    """`value` for a CSV or XLSX cell: text made plain and, when it starts like a formula, prefixed with a single
    quote so that spreadsheets show it as text (OWASP); numbers, booleans and blanks pass unchanged, so a negative
    score stays a number."""
    if not isinstance(value, str):
        return value
    text = plain_text(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
