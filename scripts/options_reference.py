"""Write options/schema.json and docs/options.md from the option declarations; --check: exit 1 if
either differs from what would be written (basicsr_tur/utils/option_schema.py)."""
import argparse
import os
import sys
from os import path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
import basicsr_tur  # noqa: E402,F401  (fills the registries)
from basicsr_tur.utils.option_schema import (  # noqa: E402
    REFERENCE_FILE,
    SCHEMA_FILE,
    reference_text,
    schema_text,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--check', action='store_true', help='write nothing; exit 1 on drift')
    args = parser.parse_args(argv)
    stale = []
    for name, text in ((SCHEMA_FILE, schema_text()), (REFERENCE_FILE, reference_text())):
        path = osp.join(ROOT, name)
        old = open(path, encoding='utf-8').read() if osp.isfile(path) else None
        if old == text:
            continue
        stale.append(name)
        if not args.check:
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'w', encoding='utf-8', newline='\n') as f:
                f.write(text)
    verb = 'out of date' if args.check else 'written'
    print(f"{verb}: {', '.join(stale)}" if stale else 'up to date')
    return 1 if args.check and stale else 0


if __name__ == '__main__':
    sys.exit(main())
