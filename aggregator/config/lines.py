"""Point a validation error's `loc` at the line and TOML key name it comes from. No business logic.

tomllib returns plain dicts without positions, so `locate_keys` scans the (already valid) TOML text
once more and records the line where each key, table header and array element starts, keyed by
the same tuple shape pydantic uses for `loc`: `("sources", 3, "clean", "remove", 1)`. It covers
TOML 1.0 (https://toml.io/en/v1.0.0): `[table]`, `[[array.of.tables]]` with their index, dotted
and quoted keys, inline tables, multi-line arrays and all four string forms.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from collections.abc import Mapping, Sequence

Loc = tuple[str | int, ...]

_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_SPACE = " \t"
_SCALAR_END = ",]}#\r\n"


def locate_keys(text: str) -> dict[Loc, int]:
    """Every key path in a valid TOML text → the 1-based line where it first appears."""
    return _Scanner(text).scan()


def find_line(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    """The line of `loc`, else of its nearest located parent (a missing key → its table header)."""
    for end in range(len(loc), 0, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def format_key(loc: Sequence[str | int], source_names: Mapping[int, str]) -> str:
    """("sources", 3, "url") → 'sources[3] (nantong-daily).url', in TOML spelling."""
    text = ""
    for position, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
            if position == 1 and loc[0] == "sources" and part in source_names:
                text += f" ({source_names[part]})"
        else:
            name = part if _BARE_KEY_RE.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
            text += f".{name}" if text else name
    return text


class _Scanner:
    """A cursor over the text; each method consumes one TOML construct and records positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[Loc, int] = {}
        #: array-of-tables path (with outer indexes) → how many elements were opened so far
        self.array_tables: dict[Loc, int] = {}
        self.newlines = [index for index, char in enumerate(text) if char == "\n"]

    def scan(self) -> dict[Loc, int]:
        table: Loc = ()
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return self.lines
            line = self._line()
            if self.text.startswith("[[", self.pos):
                self.pos += 2
                table = self._open_array_table(self._read_key(), line)
                self._expect("]]")
            elif self.text[self.pos] == "[":
                self.pos += 1
                table = self._resolve(self._read_key(), line)
                self._expect("]")
            else:
                self._key_value(table)

    def _open_array_table(self, key: Sequence[str], line: int) -> Loc:
        base = self._resolve(key[:-1], line) + (key[-1],)
        index = self.array_tables.get(base, 0)
        self.array_tables[base] = index + 1
        self._record(base, line)
        self._record(base + (index,), line)
        return base + (index,)

    def _resolve(self, key: Sequence[str], line: int) -> Loc:
        """A header's key → its loc, recording the tables it implies; a segment naming an array of
        tables means its latest element."""
        path: Loc = ()
        for part in key:
            path += (part,)
            count = self.array_tables.get(path)
            if count:
                path += (count - 1,)
            self._record(path, line)
        return path

    def _key_value(self, table: Loc) -> None:
        line = self._line()
        key = self._read_key()
        for end in range(1, len(key) + 1):
            self._record(table + tuple(key[:end]), line)
        self._expect("=")
        self._skip_blank(newlines=False)
        self._value(table + tuple(key))

    def _value(self, path: Loc) -> None:
        self._record(path, self._line())
        char = self.text[self.pos]
        if char == "[":
            self._array(path)
        elif char == "{":
            self._inline_table(path)
        elif char in "\"'":
            self._skip_string()
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1

    def _array(self, path: Loc) -> None:
        self.pos += 1
        index = 0
        while True:
            self._skip_blank(newlines=True)
            if self.text[self.pos] == "]":
                self.pos += 1
                return
            self._value(path + (index,))
            index += 1
            self._skip_blank(newlines=True)
            if self.text[self.pos] == ",":
                self.pos += 1

    def _inline_table(self, path: Loc) -> None:
        self.pos += 1
        while True:
            self._skip_blank(newlines=True)
            if self.text[self.pos] == "}":
                self.pos += 1
                return
            if self.text[self.pos] == ",":
                self.pos += 1
                continue
            self._key_value(path)

    def _read_key(self) -> list[str]:
        """A dotted key such as `clean.remove` or `categories."foo bar"` → its segments."""
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            start = self.pos
            if self.text[self.pos] in "\"'":
                self._skip_string()
                # tomllib decodes the quoted key's escapes exactly as it did when it parsed the file
                parts.append(str(tomllib.loads(f"k = {self.text[start:self.pos]}")["k"]))
            else:
                match = _BARE_KEY_RE.match(self.text, self.pos)
                if match is None:
                    raise ValueError(f"config: no key at offset {self.pos}")
                parts.append(match.group())
                self.pos = match.end()
            self._skip_blank(newlines=False)
            if self.pos < len(self.text) and self.text[self.pos] == ".":
                self.pos += 1
                continue
            return parts

    def _skip_string(self) -> None:
        quote = self.text[self.pos]
        if self.text.startswith(quote * 3, self.pos):
            self.pos += 3
            while not self.text.startswith(quote * 3, self.pos):
                self.pos += 2 if quote == '"' and self.text[self.pos] == "\\" else 1
            self.pos += 3
            # up to two quotes may end the content right before the closing delimiter (TOML 1.0)
            for _ in range(2):
                if self.text.startswith(quote, self.pos):
                    self.pos += 1
            return
        self.pos += 1
        while self.text[self.pos] != quote:
            self.pos += 2 if quote == '"' and self.text[self.pos] == "\\" else 1
        self.pos += 1

    def _skip_blank(self, *, newlines: bool) -> None:
        """Spaces and comments, and line breaks too when `newlines`."""
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in _SPACE or (newlines and char in "\r\n"):
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def _expect(self, token: str) -> None:
        self._skip_blank(newlines=False)
        if not self.text.startswith(token, self.pos):
            raise ValueError(f"config: expected {token!r} at offset {self.pos}")
        self.pos += len(token)

    def _record(self, path: Loc, line: int) -> None:
        self.lines.setdefault(path, line)

    def _line(self) -> int:
        return bisect.bisect_left(self.newlines, self.pos) + 1
