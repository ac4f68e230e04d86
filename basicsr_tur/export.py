"""ONNX export of a backbone's restoration forward, and an onnxruntime parity check against torch.

Only `net(x)` is exported: x is (N, 3, H, W) float32 RGB in [0, 1], the output the restored image of the same shape.
The TUR uncertainty head is training- and analysis-only and never part of the graph. The exporter is torch.export's
(`torch.onnx.export(..., dynamo=True)`, torch's default since 2.9, which needs onnxscript): the TorchScript exporter
is deprecated, and it has no ONNX form of torchvision's deform_conv2d (AirNet), while torch.export maps it to the
opset-19 DeformConv.

Which backbones export (measured with torch 2.14.1, onnx 1.23, onnxscript 0.7, onnxruntime 1.32, on the tiny variants
of tests/test_archs.py at the default opset: sample 2x3x61x67, onnxruntime CPU against torch at 1x3x37x53, 1x3x48x80
and 3x3x64x64; export seconds on 2 shared CPU cores; opset 17 gave the same for all but AirNet):

=============  ======  ============  ===========  ======  ================================================
backbone       opset   height/width  max |diff|   export  note
=============  ======  ============  ===========  ======  ================================================
SRResNet       >= 17   dynamic       1.2e-07      3 s     plain convolutions
Restormer      >= 17   dynamic       2.7e-07      44 s    the reflect padding to multiples of 8 is traced
PromptIR       >= 17   dynamic       2.4e-07      65 s    as Restormer; prompts resized to the traced size
Uformer        >= 17   dynamic       1.2e-07      472 s   window partition, padding to 16 x win_size traced
AirNet         >= 19   dynamic       3.4e-07      6 s     deform_conv2d -> ONNX DeformConv, new in opset 19
Transweather   >= 17   dynamic       1.2e-07      40 s    padding to multiples of 16 and its minimum traced
=============  ======  ============  ===========  ======  ================================================

No backbone of ours is refused outright; AirNet below opset 19 is (onnxruntime: "No Op registered for DeformConv with
domain_version of 18"). The export time is torch.export's symbolic shape reasoning, not the model's width: the
full-size Restormer took about 4 minutes.

Every size-dependent step of our backbones (padding, window partition, reshapes) is computed from the input's
shape, so torch.export keeps H and W symbolic. Its guards are the catch: a Python branch on the size (`if no padding
is needed`) is taken for the sample and silently assumed by the ONNX graph (onnx has no runtime asserts). A sample
whose H, W are multiples of a backbone's size multiple (64x64) therefore yields a graph that fails, or is wrong,
at any other size; the default sample, 61x67, is a multiple of nothing, and check_parity runs sizes unlike it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from os import path as osp

import torch
from basicsr.utils import get_root_logger
from torch import nn

from basicsr_tur.inference import (
    input_channels,
    load_network,
    model_source,
    new_network,
    parse_arch_opt,
)
from basicsr_tur.utils.errors import ArgumentError, UserError
from basicsr_tur.utils.files import atomic_write

MIN_OPSET = 17
# torch's exporter writes opset 18 natively; 17 goes through onnx's version converter (asked for, it is checked too).
DEFAULT_OPSET = 18
# Odd and prime: no backbone's padding multiple divides it, so no "already a multiple" branch is baked in.
DEFAULT_SAMPLE = (61, 67)
# Parity sizes unlike the sample: odd, even but not a multiple of 16, and a multiple of 64 (the no-padding branch).
DEFAULT_PARITY_SIZES = ((1, 37, 53), (1, 48, 80), (3, 64, 64))
# The sample batch: torch.export specialises sizes 0 and 1, so a batch of 1 would fix the batch axis.
SAMPLE_BATCH = 2


@dataclass(frozen=True)
class Exportability:
    """How one backbone exports: from which opset, with dynamic H/W or only at a fixed size, and why."""
    dynamic: bool
    min_opset: int
    note: str


# One table here rather than an attribute on each arch class: what exports is a fact about torch's exporter and
# onnxruntime, measured by this module's tests, not about the backbone's definition.
EXPORTABLE: dict[str, Exportability] = {
    'SRResNet': Exportability(True, 17, 'plain convolutions'),
    'Restormer': Exportability(True, 17, 'the reflect padding to multiples of 8 is traced from the size'),
    'PromptIR': Exportability(True, 17, 'as Restormer; the prompts are resized to the traced feature size'),
    'Uformer': Exportability(True, 17, 'the window partition and the padding to 16 x win_size are traced'),
    'AirNet': Exportability(True, 19, "torchvision's deform_conv2d exports as ONNX DeformConv, which exists "
                                            'from opset 19 on (onnxruntime runs it on the CPU)'),
    'Transweather': Exportability(True, 17, 'the padding to multiples of 16 (and to its minimum size) is traced'),
}


@dataclass(frozen=True)
class ExportReport:
    """What export_onnx wrote: the file, the opset, and the input sizes the graph accepts.

    height, width: (min, max) of the input's H and W as torch.export bounded them (max None: unbounded); a static
    export has min == max. batch is always dynamic.
    """
    path: str
    arch: str
    opset: int
    dynamic: bool
    sample_size: tuple[int, int]
    height: tuple[int, int | None]
    width: tuple[int, int | None]
    size_bytes: int
    seconds: float


class _RestorationForward(nn.Module):
    """`net(x)` alone: the restored image, never the uncertainty head (whose inputs torch.export then prunes)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _first_line(err: BaseException) -> str:
    """The first informative line of an exception's message (torch's exporter writes pages)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    # torch.onnx wraps the cause in a banner; its summary follows '## Exception summary'.
    if '## Exception summary' in lines:
        lines = lines[lines.index('## Exception summary') + 1:]
    return f'{type(err).__name__}: {lines[0]}' if lines else type(err).__name__


def table_name(cls: type) -> str:
    """The EXPORTABLE name of a backbone class: its own or a base class's (an alias such as TransWeather)."""
    return next((base.__name__ for base in cls.__mro__ if base.__name__ in EXPORTABLE), cls.__name__)


def resolve_opset(arch: str, opset: int | None) -> int:
    """The opset to export `arch` (an EXPORTABLE name) at: `opset`, or DEFAULT_OPSET raised to the arch's minimum.

    A backbone missing from the table (not one of ours) gets MIN_OPSET as its minimum and is tried.
    Raises ArgumentError (one line) for an opset below MIN_OPSET or below the arch's minimum (saying
    why).
    """
    entry = EXPORTABLE.get(arch)
    lowest = max(MIN_OPSET, entry.min_opset if entry else MIN_OPSET)
    if opset is None:
        return max(DEFAULT_OPSET, lowest)
    if opset < MIN_OPSET:
        raise ArgumentError(f'opset {opset} is refused: ONNX export needs opset >= {MIN_OPSET}')
    if opset < lowest:
        raise ArgumentError(f'{arch} needs opset >= {lowest}, got {opset}: {entry.note}')
    return opset


def _input_sizes(ep: torch.export.ExportedProgram) -> tuple:
    """The exported program's input shape: ints for fixed axes, torch.SymInt for dynamic ones."""
    name = ep.graph_signature.user_inputs[0]
    return tuple(next(n for n in ep.graph.nodes if n.op == 'placeholder' and n.name == name).meta['val'].shape)


def _name_axes(proto, ep: torch.export.ExportedProgram):
    """proto with the input's symbolic axes (torch's s0, s53...) renamed batch/height/width wherever they occur."""
    names = {str(size.node.expr): axis for size, axis in zip(_input_sizes(ep), ('batch', None, 'height', 'width'))
             if axis and not isinstance(size, int)}
    graph = proto.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField('dim_param') and dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]
    return proto


def _bounds(ep: torch.export.ExportedProgram, dim: int) -> tuple[int, int | None]:
    """(min, max) of the input's size on `dim` in an exported program (max None when unbounded)."""
    size = _input_sizes(ep)[dim]
    if isinstance(size, int):
        return size, size
    bound = ep.range_constraints[size.node.expr]
    upper = None if not math.isfinite(float(bound.upper)) else int(bound.upper)
    return int(bound.lower), upper


def export_onnx(net: nn.Module, path: str, opset: int | None = None, dynamic: bool = True,
                sample_size: tuple[int, int] = DEFAULT_SAMPLE, channels: int = 3) -> ExportReport:
    """Export `net`'s restoration forward (N, channels, H, W) -> (N, channels, H, W) to the ONNX file `path`.

    opset: None for DEFAULT_OPSET (18, torch's own), or the backbone's minimum when higher (EXPORTABLE: AirNet 19).
    dynamic: batch, height and width symbolic (named 'batch', 'height', 'width' in the file); otherwise height and
    width fixed at sample_size (batch stays dynamic).
    The sample's H, W should be a multiple of no backbone's padding multiple (see the module docstring).
    The input is named 'input', the output 'output'. The file is written atomically.
    Raises ArgumentError (opset refused), UserError (the export extra missing, torch.export or the
    ONNX translation failed: its first line) and OSError (the file could not be written), each one
    line.
    """
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter imports it lazily)
    except ImportError as err:
        raise UserError(f'{err.name} is not installed: pip install -e .[export]') from None
    arch = table_name(type(net))
    opset = resolve_opset(arch, opset)
    height, width = sample_size
    sample = torch.rand(SAMPLE_BATCH, channels, height, width)
    # DYNAMIC rather than AUTO: a size torch.export would have to fix is an error, not a silently static graph.
    dims = {0: torch.export.Dim.DYNAMIC}
    if dynamic:
        dims.update({2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC})
    was_training = net.training
    start = time.perf_counter()
    net.eval()
    try:
        with torch.no_grad():
            try:
                ep = torch.export.export(_RestorationForward(net), (sample,), dynamic_shapes={'x': dims},
                                         strict=False)
            except Exception as err:  # torch.export raises many types
                raise UserError(f'{arch}: torch.export could not trace the restoration forward at '
                                f'{SAMPLE_BATCH}x{channels}x{height}x{width}'
                                f'{" with dynamic height/width" if dynamic else ""}: '
                                f'{_first_line(err)}') from None
            try:
                program = torch.onnx.export(ep, (sample,), dynamo=True, opset_version=opset, input_names=['input'],
                                            output_names=['output'], verbose=False)
            except Exception as err:
                raise UserError(f'{arch}: the ONNX translation at opset {opset} failed: '
                                f'{_first_line(err)}') from None
    finally:
        net.train(was_training)
    proto = _name_axes(program.model_proto, ep)
    atomic_write(path, lambda f: onnx.save(proto, f), what='write ONNX model')
    return ExportReport(path=path, arch=arch, opset=opset, dynamic=dynamic, sample_size=(height, width),
                        height=_bounds(ep, 2), width=_bounds(ep, 3), size_bytes=osp.getsize(path),
                        seconds=time.perf_counter() - start)


def _session(path: str):
    """An onnxruntime CPU session of the file at `path`; UserError (one line) when onnxruntime is
    missing or cannot load it."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError('onnxruntime is not installed: pip install -e .[export]') from None
    if not osp.isfile(path):
        raise FileNotFoundError(f'ONNX model not found: {path}')
    try:
        return onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    except Exception as err:  # onnxruntime's own exception types
        raise UserError(f'onnxruntime cannot load {path}: {_first_line(err)}') from None


def check_parity(net: nn.Module, path: str, sizes: list[tuple[int, int, int]] | None = None,
                 atol: float = 1e-4, channels: int = 3, seed: int = 0) -> float:
    """Max |onnxruntime(CPU) - torch| of the restored output over random inputs of `sizes` (batch, H, W).

    sizes: default DEFAULT_PARITY_SIZES (unlike the export sample, to prove the dynamic axes) for a dynamic model;
    a model with fixed H, W is checked at its own size. Raises UserError (one line) when the
    difference exceeds atol, a size is not one a static model takes, or onnxruntime fails at a
    size.
    """
    session = _session(path)
    declared = session.get_inputs()[0].shape  # ints for fixed axes, names for dynamic ones
    fixed = tuple(d if isinstance(d, int) else None for d in declared[2:])
    if sizes is None:
        sizes = list(DEFAULT_PARITY_SIZES) if None in fixed else [(1, *fixed)]
    generator = torch.Generator().manual_seed(seed)
    was_training = net.training
    net.eval()
    worst = 0.0
    try:
        for batch, height, width in sizes:
            if any(f is not None and f != s for f, s in zip(fixed, (height, width))):
                raise UserError(f'{path} takes a fixed {fixed[0]}x{fixed[1]} input, not '
                                f'{height}x{width}')
            x = torch.rand(batch, channels, height, width, generator=generator)
            with torch.no_grad():
                expected = net(x).float().numpy()
            try:
                got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
            except Exception as err:  # onnxruntime's own exception types
                raise UserError(f'onnxruntime failed on {path} at '
                                f'{batch}x{channels}x{height}x{width}: {_first_line(err)}') from None
            if got.shape != expected.shape:
                raise UserError(f'{path}: onnxruntime output shape {got.shape} differs from '
                                f"torch's {expected.shape} at {batch}x{channels}x{height}x{width}")
            diff = float(abs(got - expected).max())
            if diff > atol:
                raise UserError(f'{path}: onnxruntime differs from torch by {diff:.3g} '
                                f'(atol {atol:g}) at {batch}x{channels}x{height}x{width}')
            worst = max(worst, diff)
    finally:
        net.train(was_training)
    return worst


def load_backbone(opt: str | None = None, arch: str | None = None, arch_opt: list[str] | None = None,
                  weights: str | None = None, param_key: str | None = None,
                  root: str = '.') -> tuple[nn.Module, str, int]:
    """(head-less backbone in eval mode with its weights, text saying which weights, its input
    channels) of a test options file (`opt`) or an arch (`arch`, `arch_opt` key=value entries,
    `weights`; no weights: random initialisation), through inference.load_network (EMA weights
    preferred, strict loading, one-line errors)."""
    if opt or weights:
        source = model_source(opt=opt, arch=arch, arch_opt=arch_opt, weights=weights,
                              param_key=param_key, root=root)
        # The head is never exported: the backbone is built without it (a TUR checkpoint's head
        # weights are dropped).
        net, key, why = load_network(source, uncertainty=False)
        logger = get_root_logger()
        for note in source.notes:  # numeric strings in the options read as numbers
            logger.info(f'{source.described}: {note}')
        logger.info(f"{source.described}: {source.network_g['type']} from {source.weights}, "
                    f'weights {why}')
        return net, f'{source.weights} ({key})', input_channels(source.network_g)
    network_g = {'type': arch, **parse_arch_opt(arch_opt)}
    return new_network(network_g), 'random initialisation (no --weights)', input_channels(network_g)
