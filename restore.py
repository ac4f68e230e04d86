"""Restore your own images: python restore.py -opt options/test/<setting>/<Arch>.yml -i photos/ -o restored/

Also --arch NAME --weights FILE, or --preset NAME (--list-presets); --tile 512 for large images; --uncertainty for
TUR's σ maps; -h for everything. Installed as the console script `basicsr-tur-restore`.
"""
import sys

from basicsr_tur.restore import main

if __name__ == '__main__':
    sys.exit(main())
