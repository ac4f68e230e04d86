"""bench/gpu_session.sh in its CPU mode (--device cpu --tiny), end to end: the script the GPU sessions run, on the CPU.

Costs about 60 s on 2 cores (two Python start-ups and five tiny training steps of full-size PromptIR and SRResNet,
each built from its paper recipe, then issue 21's tiny stage: batched degradations and the per-core loader table);
marked `slow` (deselect with `-m "not slow"`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from os import path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.mark.slow
def test_gpu_session_cpu_tiny_prints_every_cell(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    proc = subprocess.run(['bash', 'bench/gpu_session.sh', '--device', 'cpu', '--tiny'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cells = json.loads((tmp_path / 'bench_step.json').read_text())['cells']
    table = (tmp_path / 'bench_step.md').read_text()
    assert table in proc.stdout  # the table reaches the console as well as $OUT
    rows = [line for line in table.splitlines() if line.startswith('| ') and not line.startswith('| Backbone')]
    assert len(rows) == len(cells) == 5  # the anchor, PromptIR and SRResNet in fp32, L1 and TUR
    assert [c['arch'] for c in cells] == ['official PromptIR', 'PromptIR', 'PromptIR', 'SRResNet', 'SRResNet']
    for cell, row in zip(cells, rows):
        assert row.startswith(f"| {cell['arch']} ({cell['setting']}) | {cell['loss']} | {cell['mode']} | 2 x 16² |")
        assert 'FAILED' not in row, row
    anchor = cells[0]['result']
    assert anchor['status'] == 'ok' or anchor['error'].startswith('official PromptIR not found at'), anchor
    first = cells[1]['result']  # the first TURModel cell is measured whatever the machine's load
    assert first['status'] == 'ok', first
    assert first['ms_step'] > 0 and first['images'] == 2 and first['sync_method'] == 'SyncCounter'
    assert first['syncs_per_step'] == sum(first['sync_where'].values())
    assert 'Goals (issue 20):' in table and '0 syncs per step' in table
    # issue 21's stage: the batched degradations and the per-core table, from bench_step's measured rates
    assert '| mixed |' in (tmp_path / 'device_degradations.md').read_text()
    per_core = (tmp_path / 'per_core.md').read_text()
    assert '| mio7 on the fly |' in per_core and '(measured)' in per_core
