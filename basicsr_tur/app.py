"""A page for people who would rather click: `python app.py` (gradio; install it with `pip install -e '.[app]'`).

Pick a model: a test options file (the demo's by default), a preset of published weights and its file, or an arch
with its arguments and a weights file (typed as a path on this machine, or uploaded). Drop one or several images
and see each as input | restored | σ (the TUR head's uncertainty, colour-mapped with its scale, when the checkpoint
has the head), compare input and restored with a before/after slider, and download the restored files at their own
bit depth (a 16-bit PNG or TIFF stays 16-bit; the pictures on the page are 8-bit) with the σ maps (PNG and float32
.npy). Tiles and precision work as in restore.py, whose planning and writing (inference.plan_jobs,
restore_job) the page reuses. The loaded model is kept across requests until the model, its
weights file, the device, the precision or the tiling changes. The page binds to 127.0.0.1 unless --host says otherwise.

A failing image is reported in the page's status in one line and the others are still restored; a request that
restores nothing (no model, no image that could be read) is one error line on the page, never a traceback.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from os import path as osp

import torch

from basicsr_tur import presets
from basicsr_tur.inference import (
    IMAGE_EXTENSIONS,
    PRECISIONS,
    ModelSource,
    Restorer,
    load_restorer,
    model_source,
    plan_jobs,
    read_image,
    restore_job,
)
from basicsr_tur.utils.cli import error_message, run_cli
from basicsr_tur.utils.errors import ArgumentError, DataError, UserError
from basicsr_tur.utils.files import write_image
from basicsr_tur.utils.tiling import check_tile
from basicsr_tur.utils.visual import to_bgr8

DEMO_OPT = 'options/test/demo/Restormer.yml'
KINDS = ('options file', 'preset', 'arch')  # where the model comes from: restore.py's -opt, --preset, --arch
# The errors a user can fix, as utils/cli.run_cli reports them; anything else is a bug and keeps its traceback
# in the server's log (gradio shows the page a bare "Error").
USER_ERRORS = (UserError, OSError)
REQUEST_MAX_AGE = 3600  # seconds a request's output folder is kept (gradio serves its own copies of the files)


@dataclass(frozen=True)
class ModelChoice:
    """The model and how to run it, as chosen on the page (or on app.py's command line); hashable, the cache key.

    kind: one of KINDS. opt: a test options file (kind 'options file'). preset: a preset's name. arch / arch_opt:
    a registered arch and its arguments as 'key=value ...' (values read as YAML). weights: a weights file ('' uses
    the options file's path.pretrain_network_g or the preset's file). device: 'cpu', 'cuda', 'cuda:N' or '' (CUDA
    when available). precision: a key of inference.PRECISIONS. tile: tile side in pixels, 0 for whole images.
    """

    kind: str = 'options file'
    opt: str = ''
    preset: str = ''
    arch: str = ''
    arch_opt: str = ''
    weights: str = ''
    device: str = ''
    precision: str = 'fp32'
    tile: int = 0
    overlap: int = 32

    def source(self, root: str = '.') -> ModelSource:
        """Where this model comes from (inference.model_source), options files under `root`."""
        if self.kind not in KINDS:
            raise ArgumentError(f"model kind must be one of {', '.join(KINDS)}, got '{self.kind}'")
        try:
            arch_opt = shlex.split(self.arch_opt) if self.kind == 'arch' else []
        except ValueError as err:
            raise ArgumentError(f'arch arguments {self.arch_opt!r}: {err}') from None
        return model_source(opt=(self.opt or None) if self.kind == 'options file' else None,
                            preset=(self.preset or None) if self.kind == 'preset' else None,
                            arch=(self.arch or None) if self.kind == 'arch' else None,
                            arch_opt=arch_opt, weights=self.weights or None, root=root)


def preset_names() -> list[str]:
    """The names of the presets table (basicsr_tur/presets.py)."""
    return sorted(presets.PRESETS)


def _file_stamp(path: str) -> tuple[int, int] | None:
    """(size, mtime in ns) of a file, None when it is missing: a rewritten weights file is loaded again."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class ModelCache:
    """The last loaded Restorer, reused while the ModelChoice and its weights file (size, mtime) are unchanged.

    One model at a time: a page serves one person's choice, and a second large network would double the memory.
    `loads` counts the models loaded (for tests and the log). Raises what inference.model_source and
    inference.load_restorer raise: one line naming the file, key or value at fault.
    """

    def __init__(self, root: str = '.') -> None:
        self.root = root
        self.loads = 0
        self._key: tuple | None = None
        self._restorer: Restorer | None = None
        self._lock = threading.Lock()

    def get(self, choice: ModelChoice) -> Restorer:
        """The Restorer of `choice`, loaded (with the TUR head when the checkpoint has one) unless cached."""
        source = choice.source(self.root)
        key = (choice, source.weights, _file_stamp(source.weights))
        with self._lock:
            if key != self._key:
                self._key, self._restorer = None, None  # free the previous network before building the next
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self._restorer = load_restorer(source, choice.device or None, choice.precision,
                                               choice.tile or None, choice.overlap, uncertainty=None)
                self._key = key
                self.loads += 1
            return self._restorer


@dataclass
class PageResult:
    """What one request shows: grids [(input | restored | σ picture, caption)], slider pairs [(input, restored)]
    as 8-bit pictures, the files to download (restored images at their bit depth, σ PNG and .npy, grids), the
    status in Markdown and one line per image that failed."""

    grids: list[tuple[str, str]] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    status: str = ''
    failures: list[str] = field(default_factory=list)


def upload_names(files: list[str]) -> list[tuple[str, str]]:
    """(file, output name) of uploaded files: each its own base name (a format that cannot be written back becomes
    .png), made unique with _2, _3 ... since the browser may send two files of one name from different folders."""
    taken: set[str] = set()
    out = []
    for file in files:
        stem, ext = osp.splitext(osp.basename(file))
        ext = ext if ext.lower() in IMAGE_EXTENSIONS else '.png'
        name, n = stem + ext, 1
        while name.lower() in taken:
            n += 1
            name = f'{stem}_{n}{ext}'
        taken.add(name.lower())
        out.append((file, name))
    return out


def _drop_old_requests(out_root: str, max_age: float = REQUEST_MAX_AGE) -> None:
    """Remove request folders older than max_age seconds (gradio has served its own copies by then)."""
    now = time.time()
    for entry in os.scandir(out_root):
        if entry.is_dir() and now - entry.stat().st_mtime > max_age:
            shutil.rmtree(entry.path, ignore_errors=True)


def restore_uploads(files: list[str], choice: ModelChoice, cache: ModelCache, out_root: str,
                    progress=None) -> PageResult:
    """Restore uploaded image files with the chosen model into a new folder under out_root.

    Each image that cannot be read or restored becomes one line in `failures` (named by its upload name) and the
    others are still restored. Raises ValueError/KeyError/OSError/RuntimeError, one line, when there is no image,
    the model cannot be loaded, or no image was restored. progress(fraction, desc=...) is called per image.
    """
    if not files:
        raise DataError('no image: drop one or more image files first')
    restorer = cache.get(choice)
    os.makedirs(out_root, exist_ok=True)
    _drop_old_requests(out_root)
    out_dir = tempfile.mkdtemp(prefix='request_', dir=out_root)
    with_sigma = restorer.has_head
    jobs = plan_jobs(upload_names(files), out_dir, suffix='_restored', uncertainty=with_sigma, grid=True)
    result, megapixels, start = PageResult(), 0.0, time.perf_counter()
    for i, job in enumerate(jobs):
        if progress is not None:
            progress(i / len(jobs), desc=f'restoring {job.relative}')
        try:
            done = restore_job(restorer, job, with_sigma, None)
            # 8-bit pictures for the slider: the page's image components would squash 16 bits themselves.
            stem = osp.join(out_dir, 'view', osp.splitext(job.relative)[0])
            pair = (stem + '_input.png', stem + '_restored.png')
            write_image(pair[0], to_bgr8(read_image(job.source)))
            write_image(pair[1], to_bgr8(read_image(job.output)))
        except USER_ERRORS as err:
            # Uploads live under a temporary name: the user knows the file by the name it was dropped with.
            message = ' '.join(error_message(err).replace(job.source, job.relative).split())
            result.failures.append(message if job.relative in message else f'{job.relative}: {message}')
            continue
        megapixels += done['megapixels']
        tiles = f", {done['tiles']} tiles" if done['tiles'] > 1 else ''
        result.grids.append((job.grid, f'{job.relative} ({done["megapixels"]:.2f} MP{tiles})'))
        result.pairs.append(pair)
        result.downloads += [job.output] + [p for p in (job.sigma_png, job.sigma_npy, job.grid) if p]
    if not result.pairs:
        more = f' (and {len(result.failures) - 1} more)' if len(result.failures) > 1 else ''
        raise DataError(result.failures[0] + more)
    seconds = time.perf_counter() - start
    running = f'{restorer.device}, {restorer.precision}, ' + (
        f'tiles {restorer.tile} (overlap {restorer.overlap})' if restorer.tile else 'whole images')
    lines = [f'Restored {len(result.pairs)} of {len(jobs)} images ({megapixels:.2f} MP) in {seconds:.1f} s with '
             f'{restorer.described} on {running}; '
             + ('σ from the TUR head.' if with_sigma else 'this checkpoint has no TUR head, so no σ map.')]
    lines += [f'- error: {line}' for line in result.failures]
    result.status = '\n'.join(lines)
    return result


def restore_request(files: list[str] | None, kind: str, opt: str | None, preset: str | None, arch: str | None,
                    arch_opt: str | None, weights: str | None, weights_upload: str | None, device: str,
                    precision: str, tile: float | None, overlap: float | None, *, cache: ModelCache, out_root: str,
                    progress=None) -> PageResult:
    """The page's request: the fields as the page sends them -> restore_uploads' result. Raises gradio.Error, one
    line, for what restore_uploads raises (the page shows it; a traceback would tell the user nothing)."""
    import gradio as gr
    try:
        choice = ModelChoice(kind, (opt or '').strip(), preset or '', (arch or '').strip(), (arch_opt or '').strip(),
                             (weights_upload or weights or '').strip(), '' if device == 'auto' else (device or ''),
                             precision, int(tile or 0), int(overlap if overlap is not None else 32))
        result = restore_uploads(files or [], choice, cache, out_root, progress)
    except USER_ERRORS as err:
        raise gr.Error(' '.join(error_message(err).split()), print_exception=False) from None
    return result


def _demo_note(choice: ModelChoice, root: str) -> str:
    """A line saying the demo checkpoint is not trained yet, when the page starts on it and it is missing."""
    if choice.kind != 'options file' or choice.opt != DEMO_OPT or choice.weights:
        return ''
    try:
        source = choice.source(root)
    except USER_ERRORS:
        return ''
    if osp.isfile(source.weights):
        return ''
    return (f'\n\nThe demo checkpoint `{source.weights}` is not there yet: `make demo` trains it (about 5 minutes '
            'on a CPU); or pick another model.')


def _devices() -> list[str]:
    return ['auto', 'cpu'] + [f'cuda:{i}' for i in range(torch.cuda.device_count())]


def build_app(choice: ModelChoice | None = None, root: str = '.', cache: ModelCache | None = None,
              out_root: str | None = None):
    """The page (a gradio.Blocks), its model fields preset to `choice` (default: the demo's options file).

    root: the folder relative paths of options files and their checkpoints are read from. cache: the ModelCache
    (one is made). out_root: where each request's files are written (a temporary folder, removed at exit).
    The endpoint `restore` (gradio_client: api_name='/restore') takes the images and the model fields, and returns
    the image shown (an index), its grid, its slider pair, the files to download and the status.
    """
    import gradio as gr

    choice = choice or ModelChoice(opt=DEMO_OPT)
    cache = cache or ModelCache(root)
    if out_root is None:
        out_root = tempfile.mkdtemp(prefix='basicsr_tur_app_')
        atexit.register(shutil.rmtree, out_root, True)
    names = preset_names()

    tracker = gr.Progress()  # gradio finds the progress bar by this default value

    def on_restore(files, kind, opt, preset, arch, arch_opt, weights, weights_upload, device, precision, tile,
                   overlap, progress=tracker):
        result = restore_request(files, kind, opt, preset, arch, arch_opt, weights, weights_upload, device,
                                 precision, tile, overlap, cache=cache, out_root=out_root, progress=progress)
        shown = gr.update(choices=[(caption, i) for i, (_, caption) in enumerate(result.grids)], value=0,
                          visible=len(result.grids) > 1)
        return shown, result.grids[0][0], result.pairs[0], result.downloads, result.status, result

    def on_kind(kind):
        return [gr.update(visible=kind == k) for k in KINDS] + [gr.update(visible=kind == 'arch')]

    def on_pick(index, result):
        if result is None or index is None or not 0 <= index < len(result.pairs):
            return gr.update(), gr.update()
        return result.grids[index][0], result.pairs[index]

    with gr.Blocks(title='basicsr-tur: restore images', analytics_enabled=False) as page:
        gr.Markdown('## basicsr-tur: restore your images\nAll-in-one restoration (noise, rain, haze, dark, ...) with '
                    'Task Uncertainty Regularization. Drop images, pick a model, press **Restore**: each image is '
                    'shown as input | restored | σ (where the model is unsure, when the checkpoint has the TUR '
                    'head); the files keep their bit depth.' + _demo_note(choice, root))
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                kind = gr.Radio(list(KINDS), value=choice.kind, label='Model from')
                opt = gr.Textbox(choice.opt, label='Test options file', visible=choice.kind == 'options file',
                                 info='its network_g and path.pretrain_network_g (relative to the repository)')
                preset = gr.Dropdown(names, value=choice.preset or names[0], label='Preset (published weights)',
                                     visible=choice.kind == 'preset',
                                     info='python restore.py --list-presets describes them')
                arch = gr.Textbox(choice.arch, label='Arch', visible=choice.kind == 'arch',
                                  info='a registered arch: SRResNet, Restormer, PromptIR, Uformer, AirNet, ...')
                arch_opt = gr.Textbox(choice.arch_opt, label='Arch arguments', visible=choice.kind == 'arch',
                                      info='key=value ..., e.g. dim=48 num_blocks=[4,6,6,8]')
                weights = gr.Textbox(choice.weights, label='Weights file (path on this machine)',
                                     info="empty: the options file's or the preset's own")
                with gr.Accordion('... or upload the weights', open=False):
                    weights_upload = gr.File(label='Weights file', file_count='single',
                                             file_types=['.pth', '.pt', '.ckpt'])
                with gr.Accordion('Running', open=False):
                    devices = _devices()
                    device = gr.Dropdown(devices, value=choice.device if choice.device in devices else 'auto',
                                         label='Device', info='auto: CUDA when available')
                    precision = gr.Radio(list(PRECISIONS), value=choice.precision, label='Precision')
                    tile = gr.Number(choice.tile, precision=0, minimum=0, label='Tile (pixels; 0: whole image)',
                                     info='restore large images tile by tile in bounded memory, e.g. 512')
                    overlap = gr.Number(choice.overlap, precision=0, minimum=0, label='Tile overlap (pixels)')
            with gr.Column(scale=3):
                images = gr.File(label='Images (PNG, TIFF, JPEG; 8 or 16 bits, gray, RGBA)', file_count='multiple',
                                 file_types=list(IMAGE_EXTENSIONS), elem_id='images')
                button = gr.Button('Restore', variant='primary', elem_id='restore')
                status = gr.Markdown(elem_id='status')
                shown = gr.Dropdown([], label='Image shown', visible=False, interactive=True)
                slider = gr.ImageSlider(label='before | after (drag the handle)', type='filepath', format='png',
                                        interactive=False)
                # One picture, not a gallery: a gallery's cells crop a wide three-panel picture.
                grid = gr.Image(label='input | restored | σ', show_label=False, type='filepath', format='png',
                                interactive=False, elem_id='grid')  # the picture carries its own labels
                downloads = gr.File(label='Restored files (bit depth kept) and σ maps (.png, float .npy)',
                                    file_count='multiple', interactive=False)
        last = gr.State(None)  # the last PageResult, for picking another image to show
        kind.change(on_kind, kind, [opt, preset, arch, arch_opt], api_visibility='private')
        shown.input(on_pick, [shown, last], [grid, slider], api_visibility='private')
        button.click(on_restore, [images, kind, opt, preset, arch, arch_opt, weights, weights_upload, device,
                                  precision, tile, overlap], [shown, grid, slider, downloads, status, last],
                     api_name='restore')
    return page


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='app.py', description='A web page to restore images with basicsr-tur (needs gradio: pip install -e '
                                   "'.[app]').",
        epilog='Example: python app.py -opt options/test/demo/Restormer.yml --tile 512 (then open the address shown)')
    parser.add_argument('--host', default='127.0.0.1', help='address to bind (default 127.0.0.1: this machine only; '
                                                             '0.0.0.0 serves the network)')
    parser.add_argument('--port', type=int, help="port (default: gradio's, 7860, or the next free one)")
    model = parser.add_argument_group('model preselected on the page (one of -opt, --arch, --preset); loaded at start')
    model.add_argument('-opt', help=f'a test options file (default: the demo, {DEMO_OPT})')
    model.add_argument('--arch', help='a registered arch (with --weights)')
    model.add_argument('--arch-opt', action='extend', nargs='+', default=[], metavar='KEY=VALUE',
                       help="the arch's arguments")
    model.add_argument('--preset', help='published weights by name (python restore.py --list-presets)')
    model.add_argument('--weights', help='the weights file')
    run = parser.add_argument_group('running')
    run.add_argument('--device', help='cpu, cuda or cuda:N (default: CUDA when available)')
    run.add_argument('--precision', choices=list(PRECISIONS), default='fp32')
    run.add_argument('--tile', type=int, default=0, help='restore tile by tile, tiles of this side (0: whole)')
    run.add_argument('--tile-overlap', type=int, default=32, help='minimum overlap of tiles (default 32)')
    return parser


def choice_from_args(args: argparse.Namespace) -> tuple[ModelChoice, bool]:
    """(the page's initial ModelChoice, whether the command line named a model). ArgumentError, one line, for a wrong
    combination of model arguments."""
    given = [name for name, value in (('-opt', args.opt), ('--arch', args.arch), ('--preset', args.preset)) if value]
    if len(given) > 1:
        raise ArgumentError('give the model with one of -opt, --arch, --preset '
                            f'(got {", ".join(given)})')
    if args.arch_opt and not args.arch:
        raise ArgumentError('--arch-opt needs --arch')
    if args.arch and not args.weights:
        raise ArgumentError(f'--arch {args.arch} needs --weights FILE')
    if args.tile:
        check_tile(args.tile, args.tile_overlap, ('--tile', '--tile-overlap'))
    choice = ModelChoice(device=args.device or '', precision=args.precision, tile=args.tile or 0,
                         overlap=args.tile_overlap, weights=args.weights or '')
    if args.arch:
        choice = replace(choice, kind='arch', arch=args.arch, arch_opt=shlex.join(args.arch_opt))
    elif args.preset:
        choice = replace(choice, kind='preset', preset=args.preset)
    else:
        choice = replace(choice, opt=args.opt or DEMO_OPT)
    return choice, bool(given)


def serve(root: str, argv: list[str] | None = None) -> None:
    """Parse the command line, load the model it names (one line when it cannot), and serve the page until
    interrupted."""
    args = build_parser().parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("the page needs gradio: pip install -e '.[app]' (or pip install -r "
                        'requirements-app.txt)') from None
    choice, named = choice_from_args(args)
    cache = ModelCache(root)
    if named:  # a wrong file or key fails here, in the terminal, rather than at the first click
        cache.get(choice)
    build_app(choice, root, cache).queue().launch(server_name=args.host, server_port=args.port)


def main(argv: list[str] | None = None) -> int:
    """The console entry: 0 after the server stops, 1 (one `error:` line) when it cannot start."""
    return run_cli(lambda root: serve(root, argv), os.getcwd())


if __name__ == '__main__':
    sys.exit(main())
