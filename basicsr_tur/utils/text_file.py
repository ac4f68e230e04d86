"""Text files written by other tools (meta files, the authors' image lists, options files), read as their authors
meant or refused in one line.

Accepted: UTF-8 with or without a byte-order mark (Windows Notepad writes one), UTF-16 and UTF-32 with a byte-order
mark (Notepad's "Unicode", PowerShell's `>` redirection), and any line ends: `\\r\\n` (Windows), `\\r` (classic Mac)
and `\\n`. Refused, naming the file, the line and what to do: text in another 8-bit encoding (Latin-1, GBK, ...)
that is not valid UTF-8, and UTF-16/32 without a byte-order mark (NUL bytes in the text), which cannot be told apart
from binary data with certainty.
"""
from __future__ import annotations

import codecs
import re

from basicsr_tur.utils.errors import UserError

# UTF-32's marks first: UTF-32-LE's begins with UTF-16-LE's.
_BOMS = ((codecs.BOM_UTF32_LE, 'utf-32-le'), (codecs.BOM_UTF32_BE, 'utf-32-be'), (codecs.BOM_UTF8, 'utf-8'),
         (codecs.BOM_UTF16_LE, 'utf-16-le'), (codecs.BOM_UTF16_BE, 'utf-16-be'))
_LINE_END = re.compile(r'\r\n|\r|\n')


class TextFileError(UserError):
    """A text file that cannot be read as its author meant (encoding); the message names the file and line."""


def _line_of(data: bytes, offset: int) -> int:
    """1-based line number of a byte offset, counting any line end."""
    return len(_LINE_END.findall(data[:offset].decode('latin-1'))) + 1


def read_text(path: str) -> str:
    """The text of `path` with its byte-order mark removed and every line end turned into `\\n`.

    Raises FileNotFoundError for a missing file, TextFileError naming the file and line for text that is not UTF-8
    (without a byte-order mark) or not valid in the encoding its byte-order mark names.
    """
    with open(path, 'rb') as f:
        data = f.read()
    encoding, start = 'utf-8', 0
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding, start = name, len(bom)
            break
    body = data[start:]
    nul = body.find(b'\x00') if encoding == 'utf-8' else -1  # NULs are part of UTF-16/32 text, never of UTF-8
    if nul >= 0:
        raise TextFileError(f'{path} line {_line_of(body, nul)}: NUL bytes in a text file (UTF-16 or UTF-32 '
                            'without a byte-order mark, or not text); save it as UTF-8')
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as err:
        where = f'line {_line_of(body, err.start)}' if encoding == 'utf-8' else f'byte {err.start + start}'
        raise TextFileError(f'{path} {where}: not valid {encoding.upper()} text (byte 0x{body[err.start]:02x}); '
                            'save it as UTF-8') from None
    return _LINE_END.sub('\n', text)


def read_text_lines(path: str) -> list[str]:
    """The lines of read_text(path), without their line ends (no empty last line for a final line end)."""
    text = read_text(path)
    lines = text.split('\n')
    return lines[:-1] if text.endswith('\n') else lines
