"""Every `python train.py` / `python test.py` command of the Markdown docs that names a shipped options file parses
(its --force_yml keys included), so that a documented command runs as written."""
import glob
import re
import shlex
from os import path as osp

import pytest

from basicsr_tur.utils.options import parse_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = ['README.md', 'datasets/README.md', 'options/RECIPES.md', 'BENCHMARKS.md', 'DEVELOPERS.md',
        *sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', '*.md')))]


def doc_commands() -> list[tuple[str, str]]:
    """(doc, command) of every train/test command naming an existing options file (continuation lines joined)."""
    found = []
    for doc in DOCS:
        path = osp.join(REPO, doc)
        if not osp.isfile(path):
            continue
        text = open(path, encoding='utf-8').read().replace('\\\n', ' ')
        for match in re.finditer(r'python (train|test)\.py -opt (\S+)[^`\n]*', text):
            if osp.isfile(osp.join(REPO, match.group(2))):
                found.append((doc, match.group(0)))
    return found


COMMANDS = doc_commands()


def test_the_docs_hold_commands_to_check():
    assert any('lmdb' in command for _, command in COMMANDS)


@pytest.mark.parametrize('doc, command', COMMANDS, ids=[f'{d}:{c[:60]}' for d, c in COMMANDS])
def test_documented_command_parses(doc, command, tmp_path):
    argv = shlex.split(command, comments=True)[2:]
    argv = [a for a in argv if a != '--auto_resume']
    parse_options(str(tmp_path), 'train.py' in command, [osp.join(REPO, a) if a.endswith('.yml') else a
                                                         for a in argv])
