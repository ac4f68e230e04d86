"""basicsr-tur: all-in-one image restoration with Task Uncertainty Regularization, on BasicSR."""
from pathlib import Path

from setuptools import find_packages, setup


def read_requirements(name: str) -> list[str]:
    """Requirement lines of a requirements file, comments dropped."""
    lines = Path(__file__).with_name(name).read_text().splitlines()
    return [line.split('#')[0].strip() for line in lines if line.split('#')[0].strip()]


setup(
    name='basicsr-tur',
    version='0.1.0',
    description='All-in-one image restoration with Task Uncertainty Regularization (AAAI 2025) on BasicSR',
    long_description=Path(__file__).with_name('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['basicsr_tur', 'basicsr_tur.*']),
    python_requires='>=3.10',
    install_requires=read_requirements('requirements.txt'),
    extras_require={'dev': read_requirements('requirements-dev.txt'), 'app': read_requirements('requirements-app.txt'),
                    'export': read_requirements('requirements-export.txt')},
    entry_points={'console_scripts': ['basicsr-tur-restore=basicsr_tur.restore:main']},
    license='Apache-2.0',
)
