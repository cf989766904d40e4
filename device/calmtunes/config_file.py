"""Reading a configuration file without trusting it.

``--config`` may point at anything: a FIFO, ``/dev/zero``, a directory, a 100 MB log, a file
saved as Latin-1, ten thousand nested brackets, a YAML alias bomb. :func:`read_yaml` refuses each
with one :class:`ConfigError` that names the line (where there is one) and the fix, in bounded
time and memory:

- only a regular file, checked with stat before it is opened (opening some devices has effects:
  ``/dev/watchdog`` arms the watchdog), opened with ``O_NONBLOCK`` (a FIFO never blocks), checked
  again with fstat, and read to at most :data:`MAX_BYTES` + 1 bytes;
- strict UTF-8, the first bad byte named by its offset, line and column; no control characters;
- YAML composed node by node under limits (:class:`_LimitedComposer`): nesting depth, the number
  of values and of characters counting every alias as a full copy of what it names (a "billion
  laughs" bomb stops at the alias that crosses the limit, before anything is built), the length
  of one value, no explicit tags, keys only plain names, no key twice in one mapping.

The result is plain data (dicts, lists, scalars) with no shared or recursive parts, ready for
:func:`calmtunes.config.parse`.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, ScalarNode
from yaml.resolver import Resolver

from calmtunes.errors import ConfigError

MAX_BYTES = 1024 * 1024  # the file; every option with its comments is ~9 kB
MAX_DEPTH = 32  # nesting; a calmtunes config needs 5 (top, section, presets, preset, value)
MAX_NODES = 10_000  # values, keys and collections, each alias counted as a copy; ~400 in use
MAX_EXPANDED_CHARS = 1024 * 1024  # characters of all values, each alias counted as a copy
MAX_VALUE_CHARS = 4096  # one value: the longest an option takes is a path (PATH_MAX = 4096)
MAX_NUMBER_CHARS = 64  # one number: far beyond any option's range, and cheap to convert

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
# What YAML 1.1 allows in a stream (PyYAML's Reader.NON_PRINTABLE): tab, newlines, printable.
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_FIX_PATH = "point --config at a YAML file (config.example.yaml lists every option)"
_TOO_DEEP = (f"nested more than {MAX_DEPTH} levels deep; a calmtunes config needs 5: look for "
             f"unclosed or repeated brackets or dashes")
_FIX_SYNTAX = ("check the indentation, colons and quotes there (config.example.yaml shows the "
               "layout)")


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The file's YAML document as plain data; :class:`ConfigError` for anything else."""
    source = os.fsdecode(path)
    data = read_bytes(source)
    text = decode(data, source)
    return parse_yaml(text, source)


def read_bytes(path: str) -> bytes:
    """The bytes of a regular file of at most :data:`MAX_BYTES`, without ever blocking."""
    try:
        before = os.stat(path)
        _check_file(path, before)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError(path, ["file not found; copy config.example.yaml there"]) from None
    except OSError as exc:
        raise ConfigError(path, [_os_problem(exc)]) from None
    except ValueError:  # a NUL in the path
        raise ConfigError(path, [f"not a usable path; {_FIX_PATH}"]) from None
    try:
        st = os.fstat(fd)
        _check_file(path, st)  # it may have been swapped for something else since the stat
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(path, [_os_problem(exc)]) from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:  # it grew after the stat, or it is a file whose size stat cannot tell
        raise ConfigError(path, [_too_big(size)])
    return b"".join(chunks)


def _check_file(path: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise ConfigError(path, [f"is {kind}, not a regular file; {_FIX_PATH}"])
    if st.st_size > MAX_BYTES:
        raise ConfigError(path, [_too_big(st.st_size)])


def _too_big(size: int) -> str:
    at_least = "at least " if size == MAX_BYTES + 1 else ""
    return (f"is {at_least}{size / 1e6:.1f} MB; a config file is at most {MAX_BYTES // 2**20} "
            f"MiB (every option with its comments is about 9 kB): {_FIX_PATH}")


def _os_problem(exc: OSError) -> str:
    why = exc.strerror or type(exc).__name__
    if isinstance(exc, PermissionError):
        return f"cannot read it: {why}; make it readable by the user that runs calmtunes"
    return f"cannot read it: {why}; {_FIX_PATH}"


def decode(data: bytes, source: str) -> str:
    """Strict UTF-8 (a UTF-8 byte-order mark is allowed); no control characters."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError(source, ["the file is UTF-16 (it starts with a UTF-16 byte-order "
                                   "mark); save the file as UTF-8"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start
        line = data.count(b"\n", 0, at) + 1
        column = len(data[data.rfind(b"\n", 0, at) + 1:at].decode("utf-8", "replace")) + 1
        raise ConfigError(source, [
            f"line {line}, column {column} (byte offset {at}): byte 0x{data[at]:02x} is not "
            f"UTF-8 (perhaps Latin-1 or Windows-1252); save the file as UTF-8 (e.g. "
            f"`iconv -f latin1 -t utf-8`)"]) from None
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        at = bad.start()
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        raise ConfigError(source, [
            f"line {line}, column {column}: control character U+{ord(bad.group()):04X} is not "
            f"allowed in YAML; delete it (is this a text file?)"])
    return text


# -- YAML under limits ---------------------------------------------------------------------------
class _Refused(Exception):
    """Valid YAML that a config must not be; carries the place."""

    def __init__(self, mark: Any, problem: str) -> None:
        super().__init__(problem)
        self.mark = mark
        self.problem = problem


class _LimitedComposer(Composer):
    """PyYAML's composer with every limit checked as each event arrives.

    Each node counts once, each alias as many values and characters as the node it names (its
    *weight*, known because an alias may only name a finished node), so the count is the size of
    the data as it would be built. Depth is checked before descending, so deep nesting never
    reaches Python's recursion limit."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._nodes = 0
        self._chars = 0
        self._weights: dict[int, tuple[int, int]] = {}
        self.duplicates: list[str] = []

    def _count(self, nodes: int, chars: int, mark: Any) -> None:
        self._nodes += nodes
        self._chars += chars
        if self._nodes > MAX_NODES:
            raise _Refused(mark, f"more than {MAX_NODES} values (an alias counts as a copy of "
                                 f"what it names); a calmtunes config has a few hundred: remove "
                                 f"the repetition or the aliases")
        if self._chars > MAX_EXPANDED_CHARS:
            raise _Refused(mark, f"more than {MAX_EXPANDED_CHARS // 1024} KiB of text once "
                                 f"aliases are expanded; remove the aliases (*name)")

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.get_event()
            node = self.anchors.get(event.anchor)
            if node is None:
                raise ComposerError(None, None, f"found undefined alias {_clip(event.anchor)!r}",
                                    event.start_mark)
            weight = self._weights.get(id(node))
            if weight is None:
                raise _Refused(event.start_mark, f"alias *{_clip(event.anchor)} is inside the "
                                                 f"anchor it names, which makes it endless; "
                                                 f"remove it")
            self._count(*weight, event.start_mark)
            return node
        event = self.peek_event()
        if event.tag is not None:
            raise _Refused(event.start_mark, f"explicit tag {_clip(event.tag)!r}: a calmtunes "
                                             f"config uses none; delete it (quote the value if "
                                             f"it is text)")
        if self._depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, _TOO_DEEP)
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            raise ComposerError(f"found duplicate anchor {_clip(anchor)!r}; first occurrence",
                                self.anchors[anchor].start_mark, "second occurrence",
                                event.start_mark)
        before = (self._nodes, self._chars)
        chars = len(event.value) if isinstance(event, ScalarEvent) else 0
        self._count(1, chars, event.start_mark)
        self._depth += 1
        self.descend_resolver(parent, index)
        if isinstance(event, ScalarEvent):
            node = self.compose_scalar_node(anchor)
            self._check_scalar(node)
        elif isinstance(event, SequenceStartEvent):
            node = self.compose_sequence_node(anchor)
        elif isinstance(event, MappingStartEvent):
            node = self.compose_mapping_node(anchor)
            self._check_keys(node)
        else:  # the parser never sends anything else here
            raise ComposerError(None, None, f"unexpected {type(event).__name__}",
                                event.start_mark)
        self.ascend_resolver()
        self._depth -= 1
        self._weights[id(node)] = (self._nodes - before[0], self._chars - before[1])
        return node

    def _check_scalar(self, node: ScalarNode) -> None:
        n = len(node.value)
        if node.tag in (_INT, _FLOAT) and n > MAX_NUMBER_CHARS:
            raise _Refused(node.start_mark, f"a number of {n} characters; no option takes more "
                                            f"than {MAX_NUMBER_CHARS}: shorten it")
        if n > MAX_VALUE_CHARS:
            raise _Refused(node.start_mark, f"a value of {n} characters; no option takes more "
                                            f"than {MAX_VALUE_CHARS} (a path is at most "
                                            f"{MAX_VALUE_CHARS}): shorten it")

    def _check_keys(self, node: MappingNode) -> None:
        seen: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode):
                raise _Refused(key.start_mark, "a key must be a plain name, not a list or a "
                                               "mapping; write `name: value`")
            line = key.start_mark.line + 1
            ident = (key.tag, key.value)
            if ident in seen:
                self.duplicates.append(
                    f"line {line}: key {_clip(key.value)!r} appears twice in one mapping "
                    f"(first on line {seen[ident]}); keep one of them")
            else:
                seen[ident] = line


class _SafeConstructor(SafeConstructor):
    """PyYAML's safe constructor, with a converter's own error (an impossible date such as
    2024-13-45, an underscore-only number) turned into a YAML error at the value's place."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ConstructorError(None, None, f"cannot read this value ({_clip(str(exc))}); "
                                               f"quote it if it is text", node.start_mark) from None


def _construct_int(self: SafeConstructor, node: Any) -> int:
    """YAML 1.1 reads ``1:30`` as 90 (base 60), ``010`` as 8 (octal) and ``0x10`` as 16: a
    minutes option written as a time, or a number with a leading zero, would be taken as
    another number without a word. Those forms are refused, naming what YAML made of them."""
    body = node.value.replace("_", "").lstrip("+-")
    kind = ("base 60" if ":" in body else "hexadecimal" if body[:2].lower() == "0x"
            else "binary" if body[:2].lower() == "0b"
            else "octal" if len(body) > 1 and body.startswith("0") else None)
    value = SafeConstructor.construct_yaml_int(self, node)
    if kind is not None:
        raise _Refused(node.start_mark, f"{_clip(node.value, 20)!r} is read by YAML as the "
                                        f"{kind} number {value}; write {value} if that is meant "
                                        "(or quote it if it is text)")
    return value


def _construct_float(self: SafeConstructor, node: Any) -> float:
    """YAML 1.1 reads ``0:30.0`` as 30.0 (base 60): refused as :func:`_construct_int` does."""
    value = SafeConstructor.construct_yaml_float(self, node)
    if ":" in node.value:
        raise _Refused(node.start_mark, f"{_clip(node.value, 20)!r} is read by YAML as the "
                                        f"base 60 number {value:g}; write {value:g} if that is "
                                        "meant (or quote it if it is text)")
    return value


_SafeConstructor.add_constructor("tag:yaml.org,2002:int", _construct_int)
_SafeConstructor.add_constructor("tag:yaml.org,2002:float", _construct_float)


class PyLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _LimitedComposer,
               _SafeConstructor, Resolver):
    """The pure-Python parser under the limits."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _LimitedComposer.__init__(self)
        _SafeConstructor.__init__(self)
        Resolver.__init__(self)


LOADERS: dict[str, type] = {"python": PyLoader}
try:  # libyaml's parser, ~30x faster; the composing and the limits stay the ones above
    from yaml.cyaml import CParser

    class CLoader(_LimitedComposer, CParser, _SafeConstructor, Resolver):
        """libyaml's parser (events only) under the limits."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _LimitedComposer.__init__(self)
            _SafeConstructor.__init__(self)
            Resolver.__init__(self)

    LOADERS["libyaml"] = CLoader
except ImportError:  # PyYAML built without libyaml
    pass
LOADER: type = LOADERS.get("libyaml", PyLoader)


def parse_yaml(text: str, source: str, loader: type | None = None) -> Any:
    """One YAML document as plain data, under the limits above."""
    parser = (loader or LOADER)(text)
    try:
        node = parser.get_single_node()
        if parser.duplicates:
            raise ConfigError(source, parser.duplicates)
        data = None if node is None else parser.construct_document(node)
    except _Refused as exc:
        raise ConfigError(source, [f"{_where(exc.mark)}{exc.problem}"]) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(source, [_yaml_problem(exc)]) from None
    except yaml.YAMLError as exc:  # a ReaderError: the checks in decode() come first
        raise ConfigError(source, [f"not valid YAML ({_clip(str(exc))}); save it as UTF-8 "
                                   f"text"]) from None
    finally:
        parser.dispose()
    return _plain(data)


def _plain(value: Any) -> Any:
    """A copy without shared parts: an aliased mapping becomes its own mapping at each place
    (bounded: the composer has counted every copy), so no part of the config can change
    another through a shared object."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _where(mark: Any) -> str:
    return "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}: "


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's error in one line: where, what, and where the construct began; never the
    document itself (its own message quotes it)."""
    mark = exc.problem_mark or exc.context_mark
    if "nesting depth" in (exc.problem or ""):  # libyaml's own limit, met while scanning ahead
        return f"{_where(mark)}{_TOO_DEEP}"
    what = _clip(exc.problem or exc.context or "unreadable")
    if exc.context and exc.problem:  # "while scanning a quoted scalar" at line 2: "found ..."
        where_context = ""
        if exc.context_mark is not None and exc.context_mark is not mark:
            where_context = f" at line {exc.context_mark.line + 1}"
        what = f"{_clip(exc.context, 60)}{where_context}: {what}"
    return f"{_where(mark)}not valid YAML ({what}); {_FIX_SYNTAX}"


def _clip(text: str, limit: int = 80) -> str:
    """At most ``limit`` characters of ``text``, the cut marked."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
