"""Where a model comes from: a test options file, an arch with its arguments and weights, or a
preset of published weights. One keyword API (`model_source`) for restore.py, app.py and the ONNX
export; each returns a ModelSource that `load_restorer` (restorer.py) builds and loads.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import yaml

from basicsr_tur import presets
from basicsr_tur.utils.errors import ArgumentError
from basicsr_tur.utils.option_checks import check_network_options
from basicsr_tur.utils.option_file import OptionError, load_yaml, resolve
from basicsr_tur.utils.padding import InputPadding, input_padding

# check_keys(state_dict, where): a preset's check that a file is the one it expects (one line).
KeyCheck = Callable[[dict, str], None]


@dataclass
class ModelSource:
    """Where a model comes from: its network_g options, weights file, the key chosen in it and why
    (for the log), the test-time padding of an options file (`val.pad`, utils/padding.py; None:
    none), and a preset's key check, run on the weights before loading (None: none)."""

    network_g: dict
    weights: str
    param_key: str | None
    described: str
    notes: list[str] = field(default_factory=list)
    padding: InputPadding | None = None
    check_keys: KeyCheck | None = None


def choose_param_key(ckpt: object, requested: str | None) -> tuple[str | None, str]:
    """(key, why) of the weights to load from a checkpoint: `requested` when the file has it, else
    the EMA weights `params_ema` when the file has them, else `params`, else the file's own layout
    (None: unwrap_state_dict finds it). A requested key the file lacks falls back like this, as
    test.py's loading does (checkpoint.read_state_dict), and `why` says so."""
    keys = list(ckpt) if isinstance(ckpt, dict) else []
    if requested and requested in keys:
        return requested, f'{requested} (as asked)'
    missing = f"; the file has no '{requested}'" if requested else ''
    for key, why in (('params_ema', 'params_ema (the EMA weights, preferred when present'),
                     ('params', 'params (no EMA weights in the file')):
        if key in keys and isinstance(ckpt[key], dict):
            return key, f'{why}{missing})'
    return None, f"the file's own layout (no params_ema/params entry{missing})"


def input_channels(network_g: dict) -> int:
    """The input channels a network_g takes, under each backbone's official argument name (3
    where it says none)."""
    keys = ('inp_channels', 'num_in_ch', 'dd_in')
    return next((int(network_g[k]) for k in keys if k in network_g), 3)


def parse_arch_opt(entries: Sequence[str] | None) -> dict:
    """{key: value} of key=value entries (--arch-opt), values read as YAML (dim=48,
    num_blocks=[4,6,6,8]). ArgumentError, one line, naming a malformed entry."""
    out = {}
    for entry in entries or []:
        key, sep, value = entry.partition('=')
        if not sep or not key:
            raise ArgumentError(f'--arch-opt {entry!r}: expected key=value, e.g. dim=48')
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ArgumentError(f'--arch-opt {entry!r}: the value is not valid YAML') from None
    return out


def source_from_options(opt_path: str, weights: str | None = None,
                        root: str = '.') -> ModelSource:
    """network_g, the weights (path.pretrain_network_g, relative to `root`, unless `weights` is
    given), path.param_key_g and val.pad (the test-time padding test.py applies) of a test options
    file. Only these keys are read; network_g is checked against the arch's constructor. Raises
    OptionError (one line) naming the file and key at fault."""
    opt = load_yaml(opt_path)
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict):
        raise OptionError(f"{opt_path}: required key 'network_g' is missing (restore.py reads "
                          'network_g and path)')
    network_g = dict(opt['network_g'])
    notes = check_network_options(network_g, opt_path)
    path_opt = opt.get('path') or {}
    if weights is None:
        if not path_opt.get('pretrain_network_g'):
            raise OptionError(f"{opt_path}: 'path.pretrain_network_g' is not set; give the weights "
                              'with --weights')
        weights = resolve(str(path_opt['pretrain_network_g']), root)  # as test.py resolves it
    val = opt.get('val') if isinstance(opt.get('val'), dict) else {}
    try:  # as TURModel reads it, so that the same file restores the same pixels here
        padding = input_padding(val.get('pad'))
    except ValueError as err:
        raise OptionError(f'{opt_path}: {err}') from None
    return ModelSource(network_g, weights, path_opt.get('param_key_g'), opt_path, notes, padding)


def source_from_arch(arch: str, arch_opt: dict, weights: str,
                     param_key: str | None = None) -> ModelSource:
    """A model given on the command line: a registered arch, its constructor arguments and a
    weights file."""
    network_g = {'type': arch, **arch_opt}
    notes = check_network_options(network_g, '--arch/--arch-opt')
    return ModelSource(network_g, weights, param_key, f'--arch {arch}', notes)


def source_from_preset(name: str, weights: str | None = None, arch_opt: dict | None = None,
                       param_key: str | None = None) -> ModelSource:
    """A preset of published weights (presets.py): its arch and arguments (`arch_opt` overrides
    them), its file (found where it is usually put unless `weights` names it) and its key check."""
    preset = presets.get_preset(name)
    found = presets.find_weights(preset, weights)
    source = source_from_arch(preset.arch, {**preset.arch_opt, **(arch_opt or {})}, found,
                              param_key or preset.param_key)
    source.described = f'--preset {preset.name}'
    # presets.check_preset_keys looked up when called, so that a test can replace it
    source.check_keys = lambda state, where: presets.check_preset_keys(preset, state, where)
    return source


def model_source(*, opt: str | None = None, arch: str | None = None, preset: str | None = None,
                 arch_opt: Mapping | Sequence[str] | None = None, weights: str | None = None,
                 param_key: str | None = None, root: str = '.') -> ModelSource:
    """The model of exactly one of `opt` (a test options file), `arch` (with `weights`) or
    `preset`. arch_opt: the arch's arguments, a dict or key=value entries (values read as YAML);
    with a preset it overrides the preset's. weights: the file (overrides the options file's or the
    preset's own). param_key: the checkpoint entry (default: the options file's path.param_key_g,
    the preset's, else params_ema when present, then params). root: the folder an options file's
    relative paths are under. ArgumentError, one line, for a wrong combination."""
    given = [name for name, value in (('-opt', opt), ('--arch', arch), ('--preset', preset))
             if value]
    if len(given) != 1:
        raise ArgumentError('give the model with exactly one of -opt FILE, --arch NAME --weights '
                            f'FILE, --preset NAME (got {", ".join(given) or "none"})')
    if arch_opt and not (arch or preset):
        raise ArgumentError('--arch-opt needs --arch or --preset (whose arguments it then '
                            'overrides)')
    if opt:
        source = source_from_options(opt, weights, root)
        source.param_key = param_key or source.param_key
        return source
    arguments = dict(arch_opt) if isinstance(arch_opt, Mapping) else parse_arch_opt(arch_opt)
    if arch:
        if not weights:
            raise ArgumentError(f'--arch {arch} needs --weights FILE')
        return source_from_arch(arch, arguments, weights, param_key)
    return source_from_preset(preset, weights, arguments, param_key)
