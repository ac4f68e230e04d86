"""A web page to restore images: python app.py [-opt options/test/<setting>/<Arch>.yml | --preset NAME --weights FILE]

Then open the address it prints (http://127.0.0.1:7860 by default; --host/--port to change it). Needs gradio:
pip install -e '.[app]'. Also --device, --precision, --tile; -h for everything.
"""
import sys

from basicsr_tur.app import main

if __name__ == '__main__':
    sys.exit(main())
