"""The line format of meta files (`lq_path gt_path task` pairs, clean-image lists, LMDB meta.txt): one writer, one
reader, so that any file name a filesystem allows survives a round trip.

A line holds whitespace-separated fields. A field that is empty, contains white space or a control character, or
starts with `"` or `#`, is written as a JSON string (`"my photo.png"`, `"#1.png"`, `"tab\\there.png"`); every other
field, which is every name the old format could hold, is written as it is, so files written before this format are
read as before. An unquoted field starting with `#` starts a comment that runs to the end of the line (a line that
starts with `#` is a comment line); `#` inside a name (`a#1.png`) is part of the name.
"""
from __future__ import annotations

import json
import re

from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.text_file import read_text_lines

# One field: a JSON string (quotes and backslash escapes), or a run of non-white characters.
_FIELD = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')


def _needs_quotes(field: str) -> bool:
    return not field or field[0] in '"#' or any(c.isspace() or not c.isprintable() for c in field)


def format_meta_line(fields: tuple[str, ...] | list[str]) -> str:
    """One meta-file line (with its newline) holding `fields` exactly; read back by parse_meta_line."""
    return ' '.join(json.dumps(f, ensure_ascii=False) if _needs_quotes(f) else f for f in fields) + '\n'


def parse_meta_line(line: str, where: str) -> list[str]:
    """The fields of one meta-file line ([] for a blank or comment line); a malformed quoted field raises a
    ValueError naming `where` (the file and line)."""
    if '"' not in line and '#' not in line:  # the common line: no quoting, no comment
        return line.split()
    fields = []
    for match in _FIELD.finditer(line):
        token = match.group()
        if token.startswith('#'):
            break
        if token.startswith('"'):
            try:
                token = json.loads(token)
            except ValueError:
                raise DataError(f'{where}: malformed quoted name {token} (a JSON string was expected)') from None
        fields.append(token)
    return fields


def read_meta_rows(meta_file: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank, non-comment line of a meta file: UTF-8, UTF-16/32 with a byte-order
    mark, any line ends (utils/text_file.py; anything else raises its TextFileError, a ValueError)."""
    rows = []
    for line_no, line in enumerate(read_text_lines(meta_file), 1):
        fields = parse_meta_line(line, f'{meta_file} line {line_no}')
        if fields:
            rows.append((line_no, fields))
    return rows
