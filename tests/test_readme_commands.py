"""Every command in the code blocks of README.md, datasets/README.md and docs/*.md runs as written, at tiny size.

Each command is run in a fresh folder laid out like a clone (options/, scripts/ and the entry points linked from the
repository) holding tiny inputs in the places the command names: a few small images, weights of the named backbone
(random, with the keys the command's loader expects), and the test replica of the raw downloads for
prepare_data.py. A command that cannot run here is listed in NOT_RUN with the reason and where else it is checked,
so a new command in a README is either run here or explained.
"""
from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.utils.registry import ARCH_REGISTRY

import basicsr_tur  # noqa: F401  (registers the archs)
from basicsr_tur.presets import PRESETS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = ('README.md', 'datasets/README.md',
        *sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', '*.md'))))
LINKED = ('options', 'scripts', 'restore.py', 'train.py', 'test.py', 'app.py')

# Commands not run here, with the reason and where they are checked instead.
NOT_RUN = {
    'make demo': 'the quick start itself: installs and trains for minutes (timed in BENCHMARKS.md)',
    'make test': 'the quick start itself: this test suite',
    'python scripts/export_onnx.py -opt options/test/demo/Restormer.yml --out restormer.onnx --check': 'exports '
    'the demo Restormer (45-70 s on 2 cores); every backbone is exported at tiny size by test_export.py, and the '
    "README's SRResNet export line is run here",
    'make restore-demo': "needs the demo's trained checkpoint (make demo first)",
    'python train.py -opt options/train/demo/Restormer_TUR.yml': 'trains the demo for minutes; parsed by '
    'test_doc_commands.py, the same pipeline run at tiny size by test_pipelines.py',
    'python train.py -opt options/train/demo/Restormer_L1.yml': 'as the TUR demo training',
    'python train.py -opt options/train/demo/Restormer_TUR.yml --auto_resume': 'as the TUR demo training; resume is '
    'checked by test_resume.py',
    'python test.py -opt options/test/demo/Restormer.yml': "needs the demo's trained checkpoint; parsed by "
    'test_doc_commands.py, run at tiny size by test_pipelines.py',
    'python scripts/study.py --config options/study/demo.yml --seeds 0 1 2': 'trains every method x seed for '
    'minutes; its --dry-run line is run here, the study at tiny size by test_study.py',
    'torchrun --nproc_per_node=8 train.py -opt <options.yml> --launcher pytorch': 'needs 8 GPUs; the launchers are '
    'checked by test_dist_launchers.py and test_distributed.py (gloo)',
    'torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --master_addr=<node0> --master_port=29500 train.py -opt '
    '<options.yml> --launcher pytorch': 'needs two GPU nodes; as above',
    'srun --ntasks=16 --gres=gpu:8 python train.py -opt <options.yml> --launcher slurm': 'needs a Slurm cluster; '
    'the Slurm launcher is checked by test_dist_launchers.py',
    'python scripts/compare.py results/*/metrics.json': 'needs finished test runs, and the shell to expand the '
    "glob; scripts/compare.py is run on test.py's metrics.json files by test_compare.py",
}
# datasets/README.md's LMDB training commands train at full size on prepared data: parsed by test_doc_commands.py.
NOT_RUN_PREFIXES = {'python train.py -opt options/train/mio7/SRResNet_TUR.yml --force_yml': 'full-size training',
                    'python train.py -opt options/train/aio3/PromptIR_TUR.yml --force_yml': 'full-size training'}


def readme_commands() -> list[tuple[str, str]]:
    """(doc, command) of every command line of the docs' code blocks: continuation lines joined, comments and
    `[optional]` parts removed, spaces collapsed."""
    found = []
    for doc in DOCS:
        with open(osp.join(REPO, doc), encoding='utf-8') as f:
            text = f.read()
        for block in re.findall(r'```[a-z]*\n(.*?)```', text, re.S):
            for line in block.replace('\\\n', ' ').splitlines():
                line = re.sub(r'\[[^\]]*\]', '', line.split(' #')[0].split('\t#')[0])
                line = ' '.join(line.split())
                if re.match(r'(python|make|torchrun|srun) ', line):
                    found.append((doc, line))
    return found


COMMANDS = readme_commands()


def write_image(path: str, shape=(24, 32, 3), seed: int = 0) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    assert cv2.imwrite(path, img)


def save_weights(path: str, arch: str, arch_opt: dict, key: str | None) -> None:
    """Random weights of a backbone, under `key` (a plain state dict for None)."""
    torch.manual_seed(0)
    state = ARCH_REGISTRY.get(arch)(**arch_opt).state_dict()
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    torch.save({key: state} if key else state, path)


def lmdb_pairs(work: str) -> None:
    for name, seed in (('a.png', 0), ('b.png', 1)):
        write_image(osp.join(work, 'datasets/X/lq', name), seed=seed)
        write_image(osp.join(work, 'datasets/X/gt', name), seed=seed + 10)
    with open(osp.join(work, 'datasets/X/meta.txt'), 'w', encoding='utf-8') as f:
        f.write('a.png a.png derain\nb.png b.png dehaze\n')


def demo_weights(work: str) -> None:
    with open(osp.join(REPO, 'options/test/demo/Restormer.yml'), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    net = dict(opt['network_g'])
    path = opt['path']
    save_weights(osp.join(work, path['pretrain_network_g']), net.pop('type'), net, path.get('param_key_g', 'params'))
    write_image(osp.join(work, 'photos/a.png'))
    write_image(osp.join(work, 'photos/sub/b.jpg'), (20, 28, 3), 1)


def srresnet_weights(work: str) -> None:
    save_weights(osp.join(work, 'net.pth'), 'SRResNet', {'num_feat': 64, 'num_block': 16}, 'params')
    write_image(osp.join(work, 'a.png'), (12, 16, 3))


def preset_weights(work: str) -> None:
    preset = PRESETS['uformer_tur_mio7']
    save_weights(osp.join(work, preset.file_name), preset.arch, preset.arch_opt, preset.param_key)
    write_image(osp.join(work, 'big.tif'), (40, 56, 3))


def outputs(*paths: str):
    """A check that each path exists under the work folder after the command."""
    return lambda work: [p for p in paths if not osp.exists(osp.join(work, p))]


# command -> (set the work folder up, the outputs the command must leave)
RUN = {
    'python scripts/make_lmdb.py --lq datasets/X/lq --gt datasets/X/gt --meta datasets/X/meta.txt --out '
    'datasets/X_lmdb': (lmdb_pairs, outputs('datasets/X_lmdb/lq.lmdb/data.mdb', 'datasets/X_lmdb/gt.lmdb/data.mdb',
                                            'datasets/X_lmdb/meta.txt')),
    'python scripts/make_lmdb.py --gt datasets/X/gt --clean --out datasets/X_clean_lmdb':
        (lmdb_pairs, outputs('datasets/X_clean_lmdb/gt.lmdb/data.mdb', 'datasets/X_clean_lmdb/meta.txt')),
    'python scripts/study.py --config options/study/demo.yml --dry-run': (lambda work: None, outputs()),
    'python restore.py -opt options/test/demo/Restormer.yml -i photos/ --recursive -o restored/':
        (demo_weights, outputs('restored/a.png', 'restored/sub/b.jpg')),
    "python restore.py --arch SRResNet --arch-opt num_feat=64 num_block=16 --weights net.pth -i '*.png' -o out/":
        (srresnet_weights, outputs('out/a.png')),
    'python restore.py --preset uformer_tur_mio7 --weights Uformer_TUR_7task.pth -i big.tif -o out/ --tile 512':
        (preset_weights, outputs('out/big.tif')),
    'python restore.py --list-presets': (lambda work: None, outputs()),
    'python scripts/export_onnx.py --arch SRResNet --arch-opt num_feat=64 num_block=16 --weights net.pth --out '
    'sr.onnx': (srresnet_weights, outputs('sr.onnx')),
}
for _setting in ('mio7', 'aio3', 'aio5', 'allweather', 'realweather'):
    RUN[f'python scripts/prepare_data.py {_setting}'] = (
        lambda work, s=_setting: _replica(work, s), outputs(f'datasets/{_setting}/meta_train.txt'))


def _replica(work: str, setting: str) -> None:
    """The test replica of the setting's raw downloads under datasets/raw (tests/test_prepare_data.py)."""
    from test_prepare_data import make_raw
    raw = osp.join(work, 'datasets', 'raw')
    make_raw(raw, setting)
    if setting == 'mio7':  # the command as written cuts MiOIR's 300x300 sub-images: one training image that large
        gt = cv2.imread(osp.join(raw, 'DF2K/GT/0001.png'))
        cv2.imwrite(osp.join(raw, 'DF2K/GT/0001.png'), cv2.resize(gt, (304, 304), interpolation=cv2.INTER_LINEAR))


def test_every_readme_command_is_run_or_explained():
    unexplained = [c for _, c in COMMANDS if c not in RUN and c not in NOT_RUN
                   and not any(c.startswith(p) for p in NOT_RUN_PREFIXES)]
    assert not unexplained
    assert set(RUN) <= {c for _, c in COMMANDS}  # no stale entry: each runs a command the READMEs hold


@pytest.mark.parametrize('command', list(dict.fromkeys(c for _, c in COMMANDS if c in RUN)),  # once each
                         ids=lambda c: c[:70])
def test_readme_command_runs_as_written(command, tmp_path):
    work = str(tmp_path / 'clone')
    os.makedirs(work)
    for name in LINKED:
        os.symlink(osp.join(REPO, name), osp.join(work, name))
    setup, missing = RUN[command]
    setup(work)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''), CUDA_VISIBLE_DEVICES='')
    argv = shlex.split(command)
    done = subprocess.run([sys.executable, *argv[1:]], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert not missing(work), done.stdout[-2000:] + done.stderr[-2000:]
