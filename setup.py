"""basicsr-tur: all-in-one image restoration with Task Uncertainty Regularization, on BasicSR."""
from pathlib import Path

from setuptools import find_packages, setup


def read_requirements(name: str) -> list[str]:
    """Requirement lines of a requirements file, comments dropped and `-r other.txt` lines expanded."""
    lines = [line.split('#')[0].strip() for line in Path(__file__).with_name(name).read_text().splitlines()]
    out = []
    for line in filter(None, lines):
        out += read_requirements(line[2:].strip()) if line.startswith('-r') else [line]
    return out


setup(
    name='basicsr-tur',
    version='0.1.0',
    description='All-in-one image restoration with Task Uncertainty Regularization (AAAI 2025) on BasicSR',
    long_description=Path(__file__).with_name('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['basicsr_tur', 'basicsr_tur.*']),
    python_requires='>=3.10',
    install_requires=read_requirements('requirements.txt'),
    extras_require={'dev': read_requirements('requirements-dev.txt'),
                    'export': read_requirements('requirements-export.txt')},
    license='Apache-2.0',
)
