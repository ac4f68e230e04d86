"""The options reference (docs/options.md) and schema (options/schema.json), from the declarations.

Everything here is read from what option_checks checks against: CORE_KEYS, TEST_KEYS, the
OPTION_KEYS of each registered model and dataset, the keys every dataset takes (DATASET_COMMON,
LOADER_KINDS), and the signatures of the registered archs and losses. Nothing names a key itself,
so a key declared (with its description) is documented and in the schema once
`scripts/options_reference.py` has run; tests/test_options_schema.py fails until then. Not
imported by `import basicsr_tur`; the registries must be filled first (import basicsr_tur).
"""
from __future__ import annotations

import json
from typing import Any

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

from basicsr_tur.utils.option_checks import (
    ANY,
    CORE_KEYS,
    DATASET_COMMON,
    IO_BACKENDS,
    LOADER_KINDS,
    METRIC_KINDS,
    NO_DEFAULT,
    SCHEDULER_KINDS,
    SCHEDULERS,
    TEST_KEYS,
    WANDB_KINDS,
    Kind,
    _param_kind,
    _parameters,
    dataset_keys,
    is_task_dataset,
)

SCHEMA_FILE = 'options/schema.json'
REFERENCE_FILE = 'docs/options.md'
REGENERATE = 'python scripts/options_reference.py'

_JSON_TYPES = {bool: 'boolean', int: 'integer', float: 'number', str: 'string', list: 'array',
               dict: 'object'}
_ALL_TYPES = set(_JSON_TYPES.values()) - {'integer'} | {'null'}


def kind_schema(kind: Kind | None) -> dict:
    """The JSON schema of one Kind: types, null, words (enum), minimum, items, description and
    default."""
    if kind is None:
        return {}
    body: dict[str, Any] = {}
    types = [name for t, name in _JSON_TYPES.items()
             if t in kind.types and not (t is int and float in kind.types)]
    types += ['null'] if kind.null else []
    if kind.words and not kind.types:
        body['enum'] = list(kind.words) + ([None] if kind.null else [])
    elif set(types) != _ALL_TYPES and types:
        body['type'] = types[0] if len(types) == 1 else types
    if kind.minimum is not None:
        body['minimum'] = int(kind.minimum) if float(kind.minimum).is_integer() else kind.minimum
    if kind.item is not None:
        body['items'] = kind_schema(kind.item)
    if kind.words and kind.types:
        body = {'anyOf': [body, {'enum': list(kind.words)}]}
    if kind.description:
        body['description'] = kind.description
    if kind.default is not NO_DEFAULT:
        body['default'] = kind.default
    return body


def _signature_schema(target: Any, exclude: tuple[str, ...] = ()) -> dict:
    """The arguments a class's constructor takes by name, each typed by its hint or default, as
    option_checks._check_kwargs checks them; open (any name) where it takes **kwargs."""
    params = {n: p for n, p in _parameters(target).items() if n not in exclude and n != 'self'}
    named = {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    properties = {}
    for name, param in named.items():
        schema = kind_schema(_param_kind(param))
        if param.default is not param.empty and _plain(param.default):
            schema['default'] = list(param.default) if isinstance(param.default, tuple) \
                else param.default
        properties[name] = schema
    required = sorted(n for n, p in named.items() if p.default is p.empty)
    return {'properties': properties, 'required': required,
            'additionalProperties': any(p.kind == p.VAR_KEYWORD for p in params.values())}


def _plain(value: Any) -> bool:
    """Whether value is plain data a JSON file can hold."""
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _by_type(registry: Any, names: list[str], schemas: dict[str, dict], what: str) -> dict:
    """A mapping whose `type` is one of names, each type's keys checked by its schema (if/then)."""
    rules = []
    for name in names:
        then = dict(schemas[name])
        then['properties'] = {'type': {'const': name}, **then['properties']}
        rules.append({'if': {'properties': {'type': {'const': name}}, 'required': ['type']},
                      'then': then})
    return {'type': 'object', 'required': ['type'],
            'properties': {'type': {'enum': names, 'description': f'a registered {what}'}},
            'allOf': rules}


def _registered(registry: Any, keep: Any = None) -> list[str]:
    return sorted(name for name, cls in registry if keep is None or keep(cls))


def _task_datasets() -> list[str]:
    return _registered(DATASET_REGISTRY, is_task_dataset)


def _dataset_schema(part: bool) -> dict:
    """A dataset's options by type: the common loader keys and the type's OPTION_KEYS; a part of a
    MixedTaskDataset takes no loader keys, and its `parts` are datasets in turn."""
    schemas = {}
    for name in _task_datasets():
        kinds = dataset_keys(DATASET_REGISTRY.get(name), part)
        properties = {key: kind_schema(kinds[key]) for key in sorted(kinds) if key != 'type'}
        if 'io_backend' in properties:
            properties['io_backend'] = {**properties['io_backend'], 'properties': {
                'type': {'enum': list(IO_BACKENDS)}}}
        if 'parts' in properties:
            properties['parts'] = {**properties['parts'], 'items': {'$ref': '#/$defs/dataset_part'}}
        schemas[name] = {'properties': properties, 'additionalProperties': False}
    return _by_type(DATASET_REGISTRY, _task_datasets(), schemas, 'task-labelled dataset')


def _closed(kinds: dict[str, Kind], **extra: Any) -> dict:
    return {'type': 'object', 'properties': {k: kind_schema(v) for k, v in kinds.items()},
            'additionalProperties': False, **extra}


def _sub_options() -> dict[str, dict]:
    """The schemas of the mappings passed on to what takes them, by dotted key."""
    archs = _registered(ARCH_REGISTRY)
    losses = _registered(LOSS_REGISTRY)
    arch_schema = _by_type(ARCH_REGISTRY, archs,
                           {a: _signature_schema(ARCH_REGISTRY.get(a)) for a in archs}, 'arch')
    loss_schemas = {}
    for loss in losses:
        schema = _signature_schema(LOSS_REGISTRY.get(loss))
        # num_tasks and seed come from the run when pixel_opt leaves them out
        schema['required'] = [n for n in schema['required'] if n not in ('num_tasks', 'seed')]
        loss_schemas[loss] = schema
    metric = _closed(METRIC_KINDS, required=['type'])
    metric['properties']['type'] = {'type': 'string', 'description': 'a registered metric'}
    scheduler = _closed(SCHEDULER_KINDS, required=['type'])
    scheduler['properties']['type'] = {'enum': list(SCHEDULERS)}
    return {
        'datasets': {'additionalProperties': {'$ref': '#/$defs/dataset'}},
        'network_g': arch_schema,
        'train.pixel_opt': _by_type(LOSS_REGISTRY, losses, loss_schemas, 'loss'),
        'train.optim_g': {'type': 'object', 'required': ['type', 'lr'], 'properties': {
            'type': {'type': 'string', 'description': 'a torch.optim class, e.g. Adam'},
            'lr': {'type': 'number', 'minimum': 0}}},
        'train.scheduler': scheduler,
        'val.metrics': {'additionalProperties': metric},
        'logger.wandb': _closed(WANDB_KINDS),
    }


def declared_options() -> dict[str, tuple[Kind | None, list[str]]]:
    """Every key an options file may hold (dotted), its Kind and the components that read it."""
    found: dict[str, tuple[Kind | None, list[str]]] = {}

    def add(keys: dict, reader: str) -> None:
        for name, kind in keys.items():
            if kind is not None and kind.internal:
                continue
            known, readers = found.get(name, (kind, []))
            found[name] = (known if known is not None else kind, readers + [reader])

    add(CORE_KEYS, 'run set-up')
    for name in _registered(MODEL_REGISTRY, lambda cls: hasattr(cls, 'OPTION_KEYS')):
        add(MODEL_REGISTRY.get(name).OPTION_KEYS, name)
    add(TEST_KEYS, 'test.py')
    return found


def dataset_options() -> dict[str, Kind]:
    """Every key a dataset's options may hold, with its Kind: those every dataset takes, then each
    registered task dataset's own (the first class to declare a key gives its Kind)."""
    found: dict[str, Kind] = {}
    for name in _task_datasets():
        for key, kind in dataset_keys(DATASET_REGISTRY.get(name)).items():
            found.setdefault(key, kind)
    return found


def options_schema() -> dict:
    """options/schema.json: draft 2020-12, unknown keys refused at the top level and in each
    section."""
    sub = _sub_options()
    root: dict[str, Any] = {'type': 'object', 'properties': {}, 'additionalProperties': False}
    for name, (kind, _) in declared_options().items():
        node = root
        *parents, last = name.split('.')
        for parent in parents:
            node = node['properties'].setdefault(parent, {'type': 'object'})
            node.setdefault('properties', {})
            node['additionalProperties'] = False
        schema = {**kind_schema(kind), **sub.get(name, {})}
        node['properties'][last] = {**node['properties'].get(last, {}), **schema}
    root['required'] = ['name', 'model_type', 'network_g', 'datasets']
    return {'$schema': 'https://json-schema.org/draft/2020-12/schema',
            '$id': 'https://github.com/basicsr-tur/options/schema.json',
            'title': 'basicsr-tur options file (options/train, options/test)',
            'description': f'Generated by {REGENERATE} from the declarations; do not edit.',
            **root,
            '$defs': {'dataset': _dataset_schema(False), 'dataset_part': _dataset_schema(True)}}


def schema_text() -> str:
    """The text of options/schema.json."""
    return json.dumps(options_schema(), indent=1) + '\n'


def _type(kind: Kind | None) -> str:
    if kind is None or kind == ANY:
        return 'any'
    return kind.describe().replace('|', '\\|')


def _default(kind: Kind | None) -> str:
    if kind is None or kind.default is NO_DEFAULT:
        return ''
    return f'`{json.dumps(kind.default)}`'


def _row(key: str, kind: Kind | None, readers: list[str]) -> str:
    description = (kind.description if kind is not None else '').replace('|', '\\|')
    cells = [f'`{key}`', _type(kind), _default(kind), description, ', '.join(readers)]
    return f"| {' | '.join(cells)} |"


_HEAD = ['| key | type | default | description | read by |', '|---|---|---|---|---|']


def reference_text() -> str:
    """The text of docs/options.md."""
    lines = [
        '# Options reference', '',
        f'Generated by `{REGENERATE}` from the declarations (CORE_KEYS and TEST_KEYS in',
        "`basicsr_tur/utils/option_checks.py`, each model's and dataset's `OPTION_KEYS`,",
        'the keys every dataset takes (DATASET_COMMON, LOADER_KINDS), the constructors of the',
        'registered archs and losses); do not edit.',
        'A test fails when this page or `options/schema.json` differs from what it writes.', '',
        '## Editor support', '',
        '`options/schema.json` (JSON Schema 2020-12, using only keywords that draft 7 has too)',
        'gives completion, descriptions and checks in editors with YAML schema support.',
        'VS Code (Red Hat YAML extension), in `.vscode/settings.json`:', '',
        '```json',
        '"yaml.schemas": {"./options/schema.json": ["options/train/**/*.yml",',
        '                                           "options/test/**/*.yml"]}',
        '```', '',
        'or one file at a time, a first line `# yaml-language-server: $schema=../../schema.json`',
        '(relative to that file). JetBrains IDEs: Settings > Languages & Frameworks > Schemas and',
        'DTDs > JSON Schema Mappings: add `options/schema.json` for the same two folders.', '',
        'The schema checks names and types; `train.py` and `test.py` check more before a run',
        "starts (registered names, a model's own keys, cross-key rules, files that exist).", '',
        '## Top level and sections', '', *_HEAD,
    ]
    for name, (kind, readers) in sorted(declared_options().items(),
                                        key=lambda item: (item[0].count('.') > 0, item[0])):
        lines.append(_row(name, kind, readers))
    lines += ['', '## datasets.&lt;phase&gt;', '',
              'Every set: the loader keys (a part of a MixedTaskDataset takes none of '
              f"{', '.join(f'`{k}`' for k in sorted(LOADER_KINDS))}), and its type's own keys.", '',
              *_HEAD]
    for key, kind in sorted(dataset_options().items()):
        readers = ['every dataset'] if key in DATASET_COMMON or key in LOADER_KINDS else \
            [n for n in _task_datasets() if key in DATASET_REGISTRY.get(n).OPTION_KEYS]
        lines.append(_row(key, kind, readers))
    lines += ['', "## network_g: this package's archs", '',
              "`type` and the constructor's arguments (basicsr's archs are accepted too; each",
              "arch's docstring says what its arguments do).", '']
    for arch in _registered(ARCH_REGISTRY,
                            lambda cls: cls.__module__.startswith('basicsr_tur.')):
        schema = _signature_schema(ARCH_REGISTRY.get(arch))
        args = ', '.join(f"{n}={json.dumps(s['default'])}" if 'default' in s else n
                         for n, s in schema['properties'].items())
        lines.append(f'- `{arch}`: {args}')
    return '\n'.join(lines) + '\n'
