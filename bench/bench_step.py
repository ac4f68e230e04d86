"""Time TURModel's real training step for every backbone at its paper batch and patch: fp32 against bf16 +
torch.compile, TUR against L1, beside the official PromptIR implementation's fp32 step as the anchor.

    python bench/bench_step.py [--device cuda|cpu] [--modes fp32 bf16+compile [bf16]] [--archs PromptIR ...]
        [--steps 10] [--tiny] [--cell-timeout 90] [--compile-cell-timeout 200] [--budget S]
        [--official-promptir bench/official/PromptIR] [--json FILE] [--recipe SETTING/ARCH ...]

Each TUR/L1 cell builds the model from a real recipe, options/train/<setting>/<arch>_{TUR,L1}.yml, through
parse_options and build_model with --force_yml overrides (the mode's mixed_precision and compile, num_gpu for the
device, and with --tiny the batch and patch), and runs train.py's loop on it: feed_data, update_learning_rate and
optimize_parameters (get_current_log at the recipe's print_freq). The batches are synthetic and already on the host
(random [0, 1] float lq and gt of the recipe's size, pinned where the recipe pins them, task ids cycling over the
recipe's tasks): this measures the step, not the loader. The anchor runs va1shn9v/PromptIR's `net/model.py`
PromptIR(decoder=True) the way its train.py trains it (L1Loss, AdamW lr 2e-4, fp32) from a checkout given by
--official-promptir; that code is not part of this repository (the default folder is git-ignored, see
DEVELOPERS.md, "GPU sessions"): without it the row says so and the run goes on.

Per cell: the first steps (warm-up: compilation, cuDNN autotuning) timed apart; then --steps steps timed between two
device synchronisations (ms/step, images/s); peak device memory over those steps (CUDA: max allocated; CPU: the
worker's resident memory sampled every 20 ms); host-device sync points per step (CUDA: the warnings of
torch.cuda.set_sync_debug_mode('warn') over the timed steps; CPU: utils/sync_count.SyncCounter over one more step's
optimize_parameters calls,
the optimizer's host-side step counters excluded). The cells run in order in one worker process, which is restarted
after a cell that times out or crashes; a failing cell prints its whole error to the console, is marked failed in
the table and the run goes on with the next one. Prints one Markdown table, then the issue-20 goals met or not; with
--json, every figure as JSON too.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from os import path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Each backbone in the setting whose recipe carries its paper's batch and patch (options/RECIPES.md). Restormer has
# no paper setting here (only the CPU demo): --recipe demo/Restormer adds it.
PAPER_RECIPES = {'PromptIR': 'aio3', 'SRResNet': 'mio7', 'Uformer': 'mio7', 'Transweather': 'allweather',
                 'AirNet': 'aio3'}
OFFICIAL = 'official PromptIR'
SYNC_WARNING = 'called a synchronizing CUDA operation'
TINY = {'batch': 2, 'size': 16, 'steps': 2}
RESULT = '@@bench_step '  # prefix of the worker's result lines on its stdout
GOAL_ANCHOR_SPEEDUP, GOAL_PROMPTIR_RATE, GOAL_TUR_OVERHEAD = 3.0, 350.0, 0.08


# ---------------------------------------------------------------- worker side: one cell


def synthetic_batches(batch: int, size: int, lq_size: int, tasks: list[str], pin: bool, key: bool) -> list[dict]:
    """Two host batches as the loaders yield them: float lq/gt in [0, 1], task ids cycling over the tasks."""
    import torch
    batches = []
    for i in range(2):
        g = torch.Generator().manual_seed(i)
        ids = (torch.arange(batch) + i * batch) % len(tasks)
        data = {'lq': torch.rand(batch, 3, lq_size, lq_size, generator=g),
                'gt': torch.rand(batch, 3, size, size, generator=g),
                'task_id': ids, 'task': [tasks[t] for t in ids.tolist()]}
        if key:
            data['lq_key'] = torch.rand(batch, 3, lq_size, lq_size, generator=g)
        if pin:
            data = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in data.items()}
        batches.append(data)
    return batches


def recipe_overrides(cell: dict, device: str, workdir: str) -> list[str]:
    """--force_yml entries that turn a paper recipe into this cell: mode, device, size, and what a run without
    data needs (AirNet-TUR's frozen encoder from a fresh AirNet's weights; official AirNet past its encoder-only
    warm-up, so that the timed step is the joint one)."""
    from basicsr_tur.utils.option_file import load_yaml
    opt = load_yaml(cell['options'])
    bf16, compiled = cell['mode'].startswith('bf16'), cell['mode'].endswith('+compile')
    entries = [f"name=bench_step_{cell['setting']}_{cell['arch']}_{cell['loss']}",
               f"num_gpu={1 if device == 'cuda' else 0}",
               f"train:mixed_precision={'bf16' if bf16 else 'null'}",
               f"train:compile={'true' if compiled else 'false'}",
               f"cudnn_benchmark={'true' if device == 'cuda' else 'false'}",
               f"datasets:train:batch_size_per_gpu={cell['batch']}", f"datasets:train:gt_size={cell['size']}"]
    net = opt.get('network_g') or {}
    if 'batch_size' in net:  # AirNet: the MoCo queue is batch_size x 256 and must take whole batches
        entries.append(f"network_g:batch_size={cell['batch']}")
    train = opt.get('train') or {}
    pool = (train.get('pixel_opt') or {}).get('pool_size')
    if pool and cell['batch'] % pool:  # a --tiny batch: σ pooled over it whole
        entries.append('train:pixel_opt:pool_size=null')
    if train.get('fix_encoder') and (opt.get('path') or {}).get('pretrain_network_encoder'):
        import torch
        from basicsr.archs import build_network
        encoder = osp.join(workdir, 'airnet_encoder.pth')
        if not osp.exists(encoder):
            torch.save({'params': build_network(dict(net, batch_size=cell['batch'])).state_dict()}, encoder)
        entries.append(f'path:pretrain_network_encoder={encoder}')
    if train.get('encoder_warmup_iter'):
        entries.append('train:encoder_warmup_iter=0')
    return entries


class RssPeak:
    """Peak resident memory of this process (GiB), sampled every 20 ms by a thread while the block runs."""

    def __enter__(self) -> RssPeak:
        self.peak, self._stop = 0, threading.Event()
        page = os.sysconf('SC_PAGE_SIZE')

        def sample() -> None:
            while not self._stop.wait(0.02):
                with open('/proc/self/statm') as f:
                    self.peak = max(self.peak, int(f.read().split()[1]) * page)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def gib(self) -> float:
        return self.peak / 2**30


@contextlib.contextmanager
def captured_fd2(lines: list[str]):
    """Collect what is written to file descriptor 2 in the block (C++ warnings of torch's own threads, which
    bypass Python's warnings) into lines; the lines other than sync warnings are written back to stderr, even when
    the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors='replace').splitlines())
            for line in lines:
                if SYNC_WARNING not in line:
                    print(line, file=sys.stderr, flush=True)


def timed_steps(step, steps: int, warmup: int, device: str) -> dict:
    """Run warm-up steps, then `steps` steps between two synchronisations; on CUDA count the sync warnings of the
    timed steps (Python warnings and fd-2 lines of torch's threads). Figures as a dict."""
    import torch
    cuda = device == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    first = time.perf_counter() - start
    rss = RssPeak() if not cuda else contextlib.nullcontext()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    other: list[str] = []
    with rss, warnings.catch_warnings(record=True) as caught, \
            (captured_fd2(other) if cuda else contextlib.nullcontext()):
        warnings.simplefilter('always')
        start = time.perf_counter()
        if cuda:
            torch.cuda.set_sync_debug_mode('warn')
        try:
            for _ in range(steps):
                step()
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
        sync()
        seconds = time.perf_counter() - start
    syncs = [w for w in caught if SYNC_WARNING in str(w.message)]
    for w in caught:  # other warnings still reach the console
        if SYNC_WARNING not in str(w.message):
            print(f'{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}', file=sys.stderr)
    fd2_syncs = [line for line in other if SYNC_WARNING in line]
    where: dict[str, int] = {}
    for w in syncs:
        key = f'{osp.relpath(w.filename, ROOT) if w.filename.startswith(ROOT) else w.filename}:{w.lineno}'
        where[key] = where.get(key, 0) + 1
    if fd2_syncs:
        where['(torch threads)'] = len(fd2_syncs)
    result = {'first_s': first, 'warmup_steps': warmup, 'steps': steps, 'ms_step': 1e3 * seconds / steps,
              'peak_gib': torch.cuda.max_memory_allocated() / 2**30 if cuda else rss.gib}
    if cuda:
        result.update(syncs_per_step=(len(syncs) + len(fd2_syncs)) / steps, sync_where=where,
                      sync_method='set_sync_debug_mode')
    return result


def backend_flags() -> dict:
    """The precision and autotuning switches in force (they change fp32 speed on a GPU)."""
    import torch
    return {'cudnn_benchmark': torch.backends.cudnn.benchmark, 'tf32_matmul': torch.backends.cuda.matmul.allow_tf32,
            'tf32_cudnn': torch.backends.cudnn.allow_tf32}


def run_tur_cell(cell: dict, device: str, workdir: str) -> dict:
    """Build TURModel from the cell's recipe and time train.py's loop on synthetic host batches."""
    from basicsr.models import build_model
    from basicsr.utils import set_random_seed

    from basicsr_tur.utils.options import parse_options, set_backend_flags
    from basicsr_tur.utils.sync_count import SyncCounter, optimizer_step_counters

    argv = ['-opt', cell['options'], '--force_yml', *recipe_overrides(cell, device, workdir)]
    opt, _ = parse_options(workdir, is_train=True, argv=argv)
    set_backend_flags(opt)  # what train.py sets before building the model: cudnn_benchmark and tf32
    set_random_seed(opt['manual_seed'])
    start = time.perf_counter()
    model = build_model(opt)
    build_s = time.perf_counter() - start
    train_opt, data_opt = opt['train'], opt['datasets']['train']
    scale = int(opt.get('scale', 1))
    batches = synthetic_batches(cell['batch'], cell['size'], cell['size'] // scale, list(opt['tasks']),
                                bool(data_opt.get('pin_memory')) and device == 'cuda', bool(data_opt.get('key_crop')))
    warmup_iter = train_opt.get('warmup_iter', -1)
    accumulate = int(train_opt.get('accumulate_steps', 1))
    print_freq = opt['logger'].get('print_freq', 100)
    state = {'iter': 0, 'batch': 0}

    def step(counter=None) -> None:  # one iteration of train.py's loop
        counter = counter or contextlib.nullcontext()
        for micro in range(accumulate):
            model.feed_data(batches[state['batch'] % 2])
            state['batch'] += 1
            if micro < accumulate - 1:
                with counter:
                    model.optimize_parameters(state['iter'] + 1, step=False)
        state['iter'] += 1
        model.update_learning_rate(state['iter'], warmup_iter=warmup_iter)
        with counter:
            model.optimize_parameters(state['iter'], step=True)
        if state['iter'] % print_freq == 0:
            model.get_current_log()

    result = timed_steps(step, cell['steps'], 2 if cell['mode'].endswith('+compile') else 1, device)
    if device != 'cuda':
        # One more step with its optimize_parameters calls under the CPU sync counter (its Python dispatch would
        # slow the timed steps). feed_data is left out: it reads the loader's ids on the host, which on a CPU the
        # counter cannot tell from device tensors.
        syncs = SyncCounter(exclude=optimizer_step_counters(model.optimizer_g))
        step(syncs)
        result.update(syncs_per_step=float(syncs.total), sync_where=dict(syncs.counts), sync_method='SyncCounter')
    result.update(build_s=build_s, images=cell['batch'] * accumulate, flags=backend_flags(),
                  params_m=sum(p.numel() for p in model.net_g.parameters()) / 1e6)
    return result


def run_official_cell(cell: dict, device: str) -> dict:
    """The official PromptIR's fp32 step as its train.py runs it (Lightning: batch to the device, L1Loss, AdamW)."""
    import torch
    if not osp.isfile(osp.join(cell['official'], 'net', 'model.py')):
        raise FileNotFoundError(f"official PromptIR not found at {cell['official']} (net/model.py)")
    sys.path.insert(0, cell['official'])
    try:
        from net.model import PromptIR
    finally:
        sys.path.remove(cell['official'])
    torch.manual_seed(0)
    net = PromptIR(decoder=True).to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-4)
    loss_fn = torch.nn.L1Loss()
    batches = synthetic_batches(cell['batch'], cell['size'], cell['size'], ['t'], device == 'cuda', False)
    state = {'batch': 0}

    def step() -> None:
        data = batches[state['batch'] % 2]
        state['batch'] += 1
        lq, gt = (data[k].to(device, non_blocking=True) for k in ('lq', 'gt'))
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(lq), gt).backward()
        optimizer.step()

    result = timed_steps(step, cell['steps'], 1, device)
    if device != 'cuda':
        from basicsr_tur.utils.sync_count import SyncCounter, optimizer_step_counters
        with SyncCounter(exclude=optimizer_step_counters(optimizer)) as syncs:
            step()
        result.update(syncs_per_step=float(syncs.total), sync_where=dict(syncs.counts), sync_method='SyncCounter')
    result.update(build_s=0.0, images=cell['batch'], flags=backend_flags(),
                  params_m=sum(p.numel() for p in net.parameters()) / 1e6)
    return result


def worker(cells_file: str, device: str, threads: int | None) -> None:
    """Run the cells of a JSON file in order, one result line each on stdout; errors go whole to stderr."""
    import basicsr_tur  # noqa: F401  # isort: skip  (first: the torchvision alias basicsr needs, the registries)
    import logging

    import torch
    from basicsr.utils import get_root_logger
    get_root_logger(log_level=logging.WARNING)  # no network printout; warnings and errors still show
    if threads:
        torch.set_num_threads(threads)
    with open(cells_file) as f:
        cells = json.load(f)
    with tempfile.TemporaryDirectory(prefix='bench_step_') as workdir:
        for cell in cells:
            print(f"{RESULT}start {cell['index']}", flush=True)
            try:
                if cell['arch'] == OFFICIAL:
                    result = run_official_cell(cell, device)
                else:
                    if cell['mode'].endswith('+compile'):
                        torch._dynamo.reset()  # a fresh compile cache per cell (its compile time is its own)
                    result = run_tur_cell(cell, device, workdir)
                result['status'] = 'ok'
            except FileNotFoundError as err:
                result = {'status': 'absent', 'error': str(err)}
            except torch.OutOfMemoryError as err:
                print(f"bench_step: cell {cell['label']}: out of memory: {str(err).splitlines()[0]}", file=sys.stderr)
                result = {'status': 'failed', 'error': 'out of memory'}
            except Exception as err:  # every error of a cell is reported, and the run goes on
                traceback.print_exc()
                result = {'status': 'failed', 'error': f'{type(err).__name__}: {err}'.splitlines()[0]}
            result['index'] = cell['index']
            print(RESULT + json.dumps(result), flush=True)
            gc.collect()
            if device == 'cuda':
                torch.cuda.empty_cache()


# ---------------------------------------------------------------- parent side: the cells, the worker, the table


def plan_cells(args: argparse.Namespace) -> list[dict]:
    """The cells in priority order (a budget cuts the last ones): the anchor; every mode of the first backbone
    (PromptIR, the issue's goals); the other backbones' eager modes; then their compiled modes. L1 before TUR."""
    from basicsr_tur.utils.option_file import load_yaml
    cells: list[dict] = []

    def add(**cell) -> None:
        cell['index'] = len(cells)
        cells.append(cell)

    size, batch = (TINY['size'], TINY['batch']) if args.tiny else (128, 32)
    add(arch=OFFICIAL, setting='va1shn9v/PromptIR', loss='L1', mode='fp32', batch=batch, size=size,
        steps=args.steps, official=osp.abspath(args.official_promptir), label='official PromptIR fp32')
    order = [(args.recipes[0], mode) for mode in args.modes] + \
        [(recipe, mode) for compiled in (False, True) for recipe in args.recipes[1:] for mode in args.modes
         if mode.endswith('+compile') == compiled]
    for recipe, mode in order:
        setting, arch = recipe.split('/')
        for loss in ('L1', 'TUR'):
            options = osp.join(ROOT, 'options', 'train', setting, f'{arch}_{loss}.yml')
            data = load_yaml(options)['datasets']['train']
            add(arch=arch, setting=setting, loss=loss, mode=mode, options=options, steps=args.steps,
                batch=TINY['batch'] if args.tiny else int(data['batch_size_per_gpu']),
                size=TINY['size'] if args.tiny else int(data['gt_size']), label=f'{setting}/{arch} {loss} {mode}')
    return cells


def run_cells(cells: list[dict], args: argparse.Namespace) -> dict[int, dict]:
    """Run the cells in a worker process, restarting it after a timeout or a crash; results by cell index.

    The worker's output reaches the console as it comes (stderr untouched; stdout lines but the result lines).
    Each cell has its own time limit (compile cells a longer one); with --budget, a cell is not started once the
    budget left is below its limit's third, and its limit is cut to the budget left.
    """
    results: dict[int, dict] = {}
    start_all = time.perf_counter()
    pending = list(cells)
    with tempfile.TemporaryDirectory(prefix='bench_step_cells_') as tmp:
        while pending:
            cells_file = osp.join(tmp, 'cells.json')
            with open(cells_file, 'w') as f:
                json.dump(pending, f)
            cmd = [sys.executable, osp.abspath(__file__), '--worker', cells_file, '--device', args.device,
                   *(['--threads', str(args.threads)] if args.threads else [])]
            env = dict(os.environ, PYTHONUNBUFFERED='1',
                       PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get('PYTHONPATH')])))
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
            lines: queue.Queue = queue.Queue()

            def pump(stream=proc.stdout, lines=lines) -> None:
                for x in stream:
                    lines.put(x)
                lines.put(None)

            threading.Thread(target=pump, daemon=True).start()
            current, deadline = None, math.inf
            while True:
                left = (args.budget - (time.perf_counter() - start_all)) if args.budget else math.inf
                try:
                    line = lines.get(timeout=max(0.1, min(deadline - time.perf_counter(), 5.0)))
                except queue.Empty:
                    line = ''
                if line is None:  # the worker ended
                    break
                if line.startswith(RESULT + 'start '):
                    current = next(c for c in pending if c['index'] == int(line.split()[-1]))
                    limit = args.compile_cell_timeout if current['mode'].endswith('+compile') else args.cell_timeout
                    if left < limit / 3:
                        results[current['index']] = {'status': 'skipped',
                                                     'error': f'not run: {left:.0f} s of the budget left'}
                        proc.kill()
                        break
                    deadline = time.perf_counter() + min(limit, left)
                    print(f"=== {current['label']} (cap {min(limit, left):.0f} s)", file=sys.stderr, flush=True)
                elif line.startswith(RESULT):
                    result = json.loads(line[len(RESULT):])
                    results[result['index']] = result
                    pending = [c for c in pending if c['index'] != result['index']]
                    current, deadline = None, math.inf
                elif line:
                    print(line, end='', flush=True)
                if current is not None and time.perf_counter() > deadline:
                    results[current['index']] = {'status': 'failed', 'error': 'over the cell time limit'}
                    print(f"bench_step: {current['label']}: over its time limit, stopped", file=sys.stderr)
                    os.killpg(proc.pid, 9)
                    break
            proc.wait()
            if current is not None and current['index'] not in results:
                results[current['index']] = {'status': 'failed', 'error': f'worker died (exit code {proc.returncode})'}
                print(f"bench_step: {current['label']}: the worker died (exit code {proc.returncode})",
                      file=sys.stderr)
            pending = [c for c in pending if c['index'] not in results]
            if current is not None and results[current['index']]['status'] == 'skipped':
                for cell in pending:  # the budget is spent: what follows is not run either
                    results[cell['index']] = dict(results[current['index']])
                pending = []
            elif current is None and pending and proc.returncode != 0:
                for cell in pending:  # the worker failed before its first cell: nothing will run
                    results[cell['index']] = {'status': 'failed',
                                              'error': f'worker failed to start (exit code {proc.returncode})'}
                pending = []
    return results


def fmt(value: float | None, digits: int = 3) -> str:
    """A figure to `digits` significant digits, or '-'."""
    return '-' if value is None else f'{value:.{digits}g}'


def rate(result: dict | None) -> float | None:
    """Images per second of a measured cell."""
    if not result or result.get('status') != 'ok':
        return None
    return result['images'] / (result['ms_step'] / 1e3)


def table(cells: list[dict], results: dict[int, dict], device: str) -> list[str]:
    """The Markdown table: one row per cell, failures included."""
    memory = 'Peak GiB (allocated)' if device == 'cuda' else 'Peak GiB (RSS)'
    rows = [f'| Backbone (setting) | Loss | Mode | Batch x patch | Params (M) | First steps (s) | ms/step | img/s '
            f'| TUR vs L1 | {memory} | Syncs/step | Switches | Note |',
            '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    by_key = {(c['arch'], c['setting'], c['mode'], c['loss']): results.get(c['index']) for c in cells}
    for cell in cells:
        r = results.get(cell['index']) or {'status': 'failed', 'error': 'no result'}
        name = f"{cell['arch']} ({cell['setting']})"
        shape = f"{cell['batch']} x {cell['size']}²"
        if r['status'] != 'ok':
            note = r['error'] if r['status'] != 'failed' else f"FAILED: {r['error']}"
            rows.append(f"| {name} | {cell['loss']} | {cell['mode']} | {shape} | - | - | - | - | - | - | - | - | "
                        f"{note.replace('|', '/')[:160]} |")
            continue
        overhead = '-'
        if cell['loss'] == 'TUR':
            l1 = by_key.get((cell['arch'], cell['setting'], cell['mode'], 'L1'))
            if rate(l1):
                overhead = f"{100 * (r['ms_step'] / l1['ms_step'] - 1):+.1f}%"
        flags = r['flags']
        switches = (f"bench {'on' if flags['cudnn_benchmark'] else 'off'}, TF32 mm/conv "
                    f"{'on' if flags['tf32_matmul'] else 'off'}/{'on' if flags['tf32_cudnn'] else 'off'}")
        where = ', '.join(f'{k} x{v}' for k, v in sorted(r['sync_where'].items(), key=lambda kv: -kv[1]))
        note = f"{r['warmup_steps']} warm-up + {r['steps']} timed steps; build {r['build_s']:.1f} s" + \
            (f'; syncs: {where}' if where else '')
        rows.append(f"| {name} | {cell['loss']} | {cell['mode']} | {shape} | {r['params_m']:.2f} | "
                    f"{r['first_s']:.1f} | {r['ms_step']:.1f} | {fmt(rate(r))} | {overhead} | {r['peak_gib']:.2f} | "
                    f"{fmt(r['syncs_per_step'])} | {switches} | {note} |")
    return rows


def goals(cells: list[dict], results: dict[int, dict], device_name: str) -> list[str]:
    """Issue 20's goals, each met, not met or not measured, with the figures behind it."""
    gpu = not device_name.startswith('CPU')

    def verdict(ok: bool | None, on_gpu: bool = True) -> str:
        if on_gpu and not gpu:
            return 'a GPU goal, not judged on the CPU'
        return 'not measured' if ok is None else ('met' if ok else 'NOT met')

    find = {(c['arch'], c['mode'], c['loss']): results.get(c['index']) for c in cells}
    anchor = rate(find.get((OFFICIAL, 'fp32', 'L1')))
    lines = []
    for loss in ('L1', 'TUR'):
        fast = rate(find.get(('PromptIR', 'bf16+compile', loss)))
        ratio = fast / anchor if fast and anchor else None
        met = None if ratio is None else ratio >= GOAL_ANCHOR_SPEEDUP
        lines.append(f'- PromptIR {loss} bf16+compile vs official PromptIR fp32: {fmt(fast)} / {fmt(anchor)} img/s = '
                     f'{fmt(ratio)}x (goal >= {GOAL_ANCHOR_SPEEDUP:g}x): {verdict(met)}')
    fast = rate(find.get(('PromptIR', 'bf16+compile', 'TUR')))
    h100 = 'H100' in device_name
    lines.append(f'- PromptIR TUR bf16+compile: {fmt(fast)} img/s on {device_name} (goal >= {GOAL_PROMPTIR_RATE:g} '
                 f"img/s on an H100): {verdict(None if fast is None or not h100 else fast >= GOAL_PROMPTIR_RATE)}"
                 + ('' if h100 else ' (not an H100)'))
    overheads = []
    for cell in cells:
        if cell['loss'] == 'TUR' and cell['arch'] != OFFICIAL:
            tur, l1 = results.get(cell['index']), find.get((cell['arch'], cell['mode'], 'L1'))
            if rate(tur) and rate(l1):
                overheads.append((f"{cell['arch']} {cell['mode']}", tur['ms_step'] / l1['ms_step'] - 1))
    worst = max(overheads, key=lambda o: o[1]) if overheads else None
    lines.append(f'- TUR step within {100 * GOAL_TUR_OVERHEAD:g}% of L1\'s: '
                 + (', '.join(f'{k} {100 * v:+.1f}%' for k, v in overheads) or 'no pair measured')
                 + f': {verdict(None if worst is None else worst[1] <= GOAL_TUR_OVERHEAD)}')
    syncs = [(c['label'], results[c['index']]['syncs_per_step']) for c in cells
             if c['arch'] != OFFICIAL and rate(results.get(c['index']))]
    nonzero = [f'{k} {v:g}' for k, v in syncs if v]
    lines.append('- 0 syncs per step: ' + (f"{len(syncs) - len(nonzero)} of {len(syncs)} cells at 0"
                                             + (f" (not: {', '.join(nonzero)})" if nonzero else '')
                                             if syncs else 'no cell measured')
                 + f": {verdict(None if not syncs else not nonzero, on_gpu=False)}")
    return lines


def device_description(device: str, threads: int | None) -> str:
    """The device's name (GPU) or the CPU's, for the header."""
    import torch
    if device == 'cuda':
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    return f'CPU ({cpu}, {os.cpu_count()} cores, {threads or torch.get_num_threads()} threads)'


def main() -> None:
    """Plan the cells, run them in a worker, print the table and the goals (and write the JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'], default=None, help='default: cuda if there is one')
    parser.add_argument('--modes', nargs='+', default=['fp32', 'bf16+compile'],
                        choices=['fp32', 'bf16', 'bf16+compile'])
    parser.add_argument('--archs', nargs='+', default=list(PAPER_RECIPES), choices=list(PAPER_RECIPES),
                        help='backbones, each at its paper setting (PAPER_RECIPES)')
    parser.add_argument('--recipe', dest='extra', nargs='+', default=[], metavar='SETTING/ARCH',
                        help='more recipes, e.g. demo/Restormer (options/train/SETTING/ARCH_{TUR,L1}.yml)')
    parser.add_argument('--steps', type=int, default=None, help='timed steps per cell (default 10; --tiny 2)')
    parser.add_argument('--tiny', action='store_true',
                        help=f"batch {TINY['batch']}, {TINY['size']}² patches, {TINY['steps']} timed steps "
                             '(tests, CPU)')
    parser.add_argument('--cell-timeout', type=float, default=None,
                        help='seconds allowed to an eager cell (default 90; --tiny 30)')
    parser.add_argument('--compile-cell-timeout', type=float, default=None,
                        help='seconds allowed to a compiled cell, a cold compile included (default 200; --tiny 90)')
    parser.add_argument('--budget', type=float, default=None,
                        help='seconds for all cells: a cell is cut to what is left, and not started below a third '
                             'of its limit')
    parser.add_argument('--official-promptir', default=osp.join(ROOT, 'bench', 'official', 'PromptIR'),
                        metavar='DIR', help='a checkout of github.com/va1shn9v/PromptIR (never committed)')
    parser.add_argument('--json', default=None, metavar='FILE', help='write every figure as JSON')
    parser.add_argument('--markdown', default=None, metavar='FILE', help='write the table and the goals to FILE too')
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads of the worker (default: torch\'s; 1 with --tiny on the CPU, where threads '
                             'on shared cores cost more than they save)')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.worker:
        worker(args.worker, args.device, args.threads)
        return
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device here')
    args.steps = args.steps or (TINY['steps'] if args.tiny else 10)
    args.cell_timeout = args.cell_timeout or (30.0 if args.tiny else 90.0)
    args.compile_cell_timeout = args.compile_cell_timeout or (90.0 if args.tiny else 200.0)
    if args.threads is None and args.tiny and args.device == 'cpu':
        args.threads = 1
    args.recipes = [f'{PAPER_RECIPES[a]}/{a}' for a in args.archs] + args.extra
    for recipe in args.extra:
        setting, _, arch = recipe.partition('/')
        for loss in ('TUR', 'L1'):
            if not osp.isfile(osp.join(ROOT, 'options', 'train', setting, f'{arch}_{loss}.yml')):
                parser.error(f'--recipe {recipe}: options/train/{setting}/{arch}_{loss}.yml not found')
    sys.path.insert(0, ROOT)
    cells = plan_cells(args)
    device_name = device_description(args.device, args.threads)
    start = time.perf_counter()
    results = run_cells(cells, args)
    header = (f'# bench_step.py: torch {torch.__version__}, {device_name}, {time.strftime("%Y-%m-%d")}, '
              f"{'--tiny, ' if args.tiny else ''}{args.steps} timed steps per cell, "
              f'{time.perf_counter() - start:.0f} s in all')
    report = '\n'.join([header, '', *table(cells, results, args.device), '', 'Goals (issue 20):',
                        *goals(cells, results, device_name)])
    print('\n' + report, flush=True)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(report + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'header': header, 'device': device_name,
                       'cells': [dict(c, result=results.get(c['index'])) for c in cells]}, f, indent=1)


if __name__ == '__main__':
    main()
