"""Export a trained backbone's restoration forward to ONNX, optionally checking it against torch with onnxruntime.

    python scripts/export_onnx.py -opt options/test/demo/Restormer.yml --out restormer.onnx --check
    python scripts/export_onnx.py --arch SRResNet --arch-opt num_block=16 --weights net_g.pth --out sr.onnx
    python scripts/export_onnx.py ... --static 256 256 --opset 19

The model comes from a test options file (network_g; weights path.pretrain_network_g under path.param_key_g) or
from --arch/--arch-opt/--weights. Without a key, a checkpoint's EMA weights (params_ema) are preferred when it
holds them, and the choice is logged. The ONNX graph takes (N, 3, H, W) float32 RGB in [0, 1] ('input') and returns
the restored image ('output'); H, W are dynamic unless --static fixes them. The TUR uncertainty head is never
exported. Needs the `export` extra (pip install -e .[export]). Errors are one line.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# basicsr_tur first: it installs the torchvision alias basicsr 1.4.2 needs, so basicsr is imported after it, here.
from basicsr_tur.export import EXPORTABLE, MIN_OPSET, check_parity, export_onnx, load_backbone
from basicsr_tur.utils.cli import run_cli
from basicsr_tur.utils.errors import ArgumentError

from basicsr.utils import get_root_logger  # isort: skip


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('-opt', help='test options file: network_g, path.pretrain_network_g, path.param_key_g')
    source.add_argument('--arch', help=f"a registered backbone ({', '.join(EXPORTABLE)})")
    parser.add_argument('--arch-opt', action='extend', nargs='+', default=[], metavar='KEY=VALUE',
                        help="--arch's constructor arguments (values read as YAML), as in restore.py")
    parser.add_argument('--weights', help='checkpoint for --arch (default: random weights)')
    parser.add_argument('--param-key', help='the checkpoint entry to load (default: params_ema when present, '
                                            'else params)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--opset', type=int, default=None,
                        help=f'ONNX opset, >= {MIN_OPSET} (default: 18, or the backbone\'s minimum: AirNet 19)')
    parser.add_argument('--static', type=int, nargs=2, metavar=('H', 'W'), default=None,
                        help='fix the input height and width (default: dynamic)')
    parser.add_argument('--check', action='store_true',
                        help='run onnxruntime (CPU) against torch after export and print the max abs difference')
    parser.add_argument('--atol', type=float, default=1e-4, help='the largest difference --check accepts')
    return parser


def export_pipeline(args: argparse.Namespace, root_path: str) -> None:
    """Load the model, export it, and check parity when asked; errors propagate one line to run_cli."""
    if args.opset is not None and args.opset < MIN_OPSET:
        raise ArgumentError(f'--opset {args.opset} is refused: ONNX export needs opset >= '
                            f'{MIN_OPSET}')
    if args.opt and (args.arch_opt or args.weights):
        raise ArgumentError('--arch-opt and --weights go with --arch; -opt names the backbone and '
                            'weights itself')
    logger = get_root_logger()
    logger.setLevel(logging.INFO)  # basicsr sets the level only when a log file is given
    net, source, channels = load_backbone(args.opt, args.arch, args.arch_opt, args.weights,
                                          args.param_key, root_path)
    logger.info(f'exporting {type(net).__name__} with weights {source}')
    kwargs = {'dynamic': args.static is None, 'channels': channels}
    if args.static:
        kwargs['sample_size'] = tuple(args.static)
    report = export_onnx(net, args.out, opset=args.opset, **kwargs)
    size = 'dynamic height/width' if report.dynamic else f'fixed {report.height[0]}x{report.width[0]}'
    print(f'{report.path}: {report.arch} with weights {source}, opset {report.opset}, {size}, '
          f'{report.size_bytes / 1e6:.1f} MB, {report.seconds:.0f} s')
    if args.check:
        diff = check_parity(net, args.out, atol=args.atol, channels=channels)
        print(f'onnxruntime vs torch: max abs diff {diff:.3g} (atol {args.atol:g})')


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the export; errors print one line and return 1."""
    args = build_parser().parse_args(argv)
    return run_cli(lambda root: export_pipeline(args, root), os.getcwd())


if __name__ == '__main__':
    sys.exit(main())
