"""Reading an options file: a safe YAML loader with basicsr's option semantics, and `--force_yml` overrides.

basicsr 1.4.2's `parse_options` reads YAML with `yaml.CLoader`, which constructs `!!python/object` tags, so a
downloaded options file could run code. We load with `yaml.SafeLoader` (mapping order kept, duplicate keys refused)
and read each `--force_yml a:b=value` value with the same loader, never as Python. Every problem is an OptionError
whose one-line message names the file (or the override) and the key at fault.
"""
from __future__ import annotations

import collections.abc
from collections import OrderedDict
from os import path as osp
from typing import Any

import yaml

from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.text_file import TextFileError, read_text


class OptionError(UserError):
    """A problem in an options file; its message names the file and the key at fault."""


class _SafeOrderedLoader(yaml.SafeLoader):
    """SafeLoader that keeps mapping order and refuses duplicate keys; SafeLoader itself refuses python/* tags."""


class _DuplicateKeyError(yaml.YAMLError):
    """A mapping that names one key twice (YAML says keys are unique; PyYAML keeps the last silently)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f'duplicate key {key!r} (first at line {first_line})')
        self.key, self.line, self.first_line = key, line, first_line


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> OrderedDict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == 'tag:yaml.org,2002:merge':  # `<<: *base` may override keys; explicit keys may not repeat
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, collections.abc.Hashable):
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKeyError(key, line, seen[key])
            seen[key] = line
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


_SafeOrderedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str) -> dict:
    """Read a YAML file with a safe loader; unsafe tags, duplicate keys and syntax errors raise OptionError."""
    if not osp.isfile(path):
        raise OptionError(f'{path}: options file not found')
    try:
        text = read_text(path)  # UTF-8 (a byte-order mark allowed), UTF-16/32 with one; any line ends
    except TextFileError as err:
        raise OptionError(str(err)) from None
    try:
        data = yaml.load(text, Loader=_SafeOrderedLoader)
    except _DuplicateKeyError as err:
        raise OptionError(f'{path}: line {err.line}: {err}') from None
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark
        where = f'line {mark.line + 1}' if mark is not None else 'unknown line'
        raise OptionError(f'{path}: {where}: refused unsafe or unknown YAML tag ({err.problem}); '
                          'options files may only hold plain values') from None
    except yaml.YAMLError as err:
        raise OptionError(f'{path}: invalid YAML: {str(err).splitlines()[0]}') from None
    if not isinstance(data, dict):
        raise OptionError(f'{path}: expected a mapping of options at the top level, got {type(data).__name__}')
    return data


def dump_yaml(data: Any) -> str:
    """Serialise plain option data (OrderedDicts included) back to YAML text."""

    class _Dumper(yaml.SafeDumper):
        pass

    _Dumper.add_representer(OrderedDict, lambda d, v: d.represent_dict(v.items()))
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None)


def resolve(path: str, root: str) -> str:
    """A path from the options: `~` expanded, and a relative one under root (the run's one root folder)."""
    path = osp.expanduser(path)
    return path if osp.isabs(path) else osp.join(root, path)


def find_relative(path: str, opt_path: str, root_path: str) -> str:
    """A file the options name that ships beside them (published.file): absolute as given, else under the run's
    root, else under the options file's folder or one of its parents (so that options/test/x.yml finds
    options/published.yml from any working folder); the path under root when none exists."""
    path = osp.expanduser(path)
    if osp.isabs(path):
        return path
    candidates = [osp.join(root_path, path)]
    folder = osp.dirname(osp.abspath(opt_path))
    while folder != osp.dirname(folder):
        candidates.append(osp.join(folder, path))
        folder = osp.dirname(folder)
    return next((c for c in candidates if osp.exists(c)), candidates[0])


def _parse_force_value(text: str, keys: str, entry: str) -> Any:
    """Read a --force_yml value as YAML with the safe loader (never evaluated as Python); YAML tags are refused.

    A number YAML 1.1 reads as a string (`2e-3`) is converted later, where the option takes a number (see
    option_checks.coerce).
    """
    try:
        if any(isinstance(token, yaml.TagToken) for token in yaml.scan(text)):
            raise OptionError(f'--force_yml {keys!r}: YAML tags are not allowed')
        return yaml.load(text, Loader=_SafeOrderedLoader)
    except yaml.YAMLError as err:
        reason = ': '.join(str(p) for p in (getattr(err, 'context', None), getattr(err, 'problem', None)) if p) \
            or str(err).splitlines()[0]
        raise OptionError(f'--force_yml {entry!r}: value is not valid YAML ({reason})') from None


def _list_index(node: list, key: str, keys: str) -> int:
    """Index `key` (e.g. '0') of a list reached by a --force_yml path, or an OptionError naming the entry."""
    if not key.lstrip('-').isdigit() or not -len(node) <= int(key) < len(node):
        raise OptionError(f'--force_yml {keys!r}: {key!r} is not an index of a list of {len(node)} items')
    return int(key)


def apply_force_yml(opt: dict, entry: str) -> None:
    """Set one `a:b:c=value` override in opt: mappings on the way are created when absent, lists are entered by
    index; raises OptionError (one line, naming the entry) for a malformed entry or value."""
    if '=' not in entry:
        raise OptionError(f"--force_yml {entry!r}: expected KEY=VALUE, e.g. train:optim_g:lr=2.0e-4 (quote a value "
                          "with spaces as one argument: 'published:row=PromptIR + TUR')")
    keys, text = (s.strip() for s in entry.split('=', 1))
    *parents, last = names = keys.split(':')
    if not all(names):
        raise OptionError(f'--force_yml {entry!r}: empty key name in {keys!r} (keys are joined by single colons)')
    value = _parse_force_value(text, keys, entry)
    node: Any = opt
    for depth, name in enumerate(parents):
        node = node[_list_index(node, name, keys)] if isinstance(node, list) else node.setdefault(name, OrderedDict())
        if not isinstance(node, (dict, list)):
            raise OptionError(f"--force_yml {keys!r}: '{'.'.join(names[:depth + 1])}' is not a mapping")
    if isinstance(node, list):
        node[_list_index(node, last, keys)] = value
    else:
        node[last] = value
