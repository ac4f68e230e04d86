"""The install: one distribution per module (two wheels of `cv2` or `tensorboard` write over each other's files, a
known source of broken environments), requirements that agree with basicsr's, no timm, and `pip check` clean."""
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# setup.py reads these: install_requires and the extras.
REQUIREMENT_FILES = sorted(REPO.glob('requirements*.txt'))
# The distributions that provide each module basicsr also installs: ours must be the ones basicsr requires.
PROVIDERS = {'cv2': {'opencv-python', 'opencv-python-headless', 'opencv-contrib-python',
                     'opencv-contrib-python-headless'},
             'tensorboard': {'tensorboard', 'tb-nightly'}}


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503: case and runs of -_. do not matter)."""
    return re.sub(r'[-_.]+', '-', name).lower()


def our_requirements() -> dict[str, str]:
    """{canonical distribution name: requirements file} of every requirement setup.py reads."""
    names = {}
    for path in REQUIREMENT_FILES:
        for line in path.read_text().splitlines():
            match = re.match(r'\s*([A-Za-z0-9][A-Za-z0-9._-]*)', line.split('#')[0])
            if match:
                names[canonical(match.group(1))] = path.name
    return names


@pytest.mark.parametrize('module', sorted(PROVIDERS))
def test_one_distribution_provides_the_module(module):
    providers = importlib.metadata.packages_distributions().get(module, [])
    assert len(set(map(canonical, providers))) == 1, (
        f'{module} is provided by {providers}: uninstall all but the one basicsr requires and reinstall it '
        '(pip install --force-reinstall --no-deps NAME), as their files overlap')


def test_requirements_name_the_cv2_and_tensorboard_distributions_basicsr_requires():
    basicsr = {canonical(re.match(r'[A-Za-z0-9._-]+', r).group(0)) for r in importlib.metadata.requires('basicsr')}
    ours = our_requirements()
    for module, providers in PROVIDERS.items():
        named = {name: file for name, file in ours.items() if name in providers}
        assert named and set(named) <= basicsr, (
            f'{module}: we require {named or "nothing"}, basicsr requires {sorted(basicsr & providers)}')


def test_no_requirement_names_timm():
    assert 'timm' not in our_requirements()


@pytest.mark.skipif(importlib.util.find_spec('pip') is None, reason='pip is not installed in this environment')
def test_pip_check_finds_no_broken_requirement():
    proc = subprocess.run([sys.executable, '-m', 'pip', 'check'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        f'pip check: {proc.stdout.strip() or proc.stderr.strip()} (a stale basicsr-tur entry is refreshed by '
        'pip install --no-deps -e .)')
