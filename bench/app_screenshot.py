"""The README's screenshot of the page (app.py) after a real restoration, taken with headless Chromium.

    python bench/app_screenshot.py [-opt options/test/demo/Restormer.yml] [--weights FILE]
        [--image datasets/demo/test/lq/noise/chelsea.png] [--out bench/figures/app.jpg]

Starts the page on a free local port with the model preselected (default: the demo's Restormer, trained by
`make demo`), opens it in Chromium, drops the image, presses Restore, waits for the result (input | restored | σ and
the status line) and saves the whole page. Needs the `app` extra (gradio), Playwright's Python package
(`pip install playwright`) and a Chromium (`apt-get install chromium`; Playwright's own browser download is not
needed: --chromium names the executable). A .jpg output is written at --quality, a .png losslessly.
"""
from __future__ import annotations

import basicsr_tur  # noqa: F401  # isort: skip  (first: it adds the torchvision alias basicsr needs)
import argparse
import os
import socket
import sys
import time

from basicsr_tur.app import DEMO_OPT, ModelCache, ModelChoice, build_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def screenshot(url: str, image: str, out: str, chromium: str, width: int, quality: int, timeout_s: float) -> float:
    """Drive the page at url: upload image, press Restore, wait for the status; save the page to out. Returns the
    seconds from the click to the result."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        # --no-sandbox: Chromium refuses to run as root with its sandbox (containers, CI).
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=['--no-sandbox'])
        try:
            page = browser.new_page(viewport={'width': width, 'height': 900})
            page.set_default_timeout(timeout_s * 1000)
            page.goto(url, wait_until='load')  # not 'networkidle': the page keeps a connection open to its server
            page.locator('#restore').wait_for()
            page.locator('#images input[type=file]').set_input_files(image)
            page.wait_for_timeout(500)  # the upload finishes before the click reads the field
            start = time.perf_counter()
            page.locator('#restore').click()
            page.locator('#status', has_text='Restored').wait_for()
            page.locator('#grid img').first.wait_for()
            seconds = time.perf_counter() - start
            page.wait_for_function("() => [...document.images].every(i => i.complete)")
            page.wait_for_timeout(1000)  # images laid out
            kind = 'jpeg' if out.lower().endswith(('.jpg', '.jpeg')) else 'png'
            page.screenshot(path=out, full_page=True, type=kind, **({'quality': quality} if kind == 'jpeg' else {}))
        finally:
            browser.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-opt', default=DEMO_OPT, help='test options file of the model (default: the demo)')
    parser.add_argument('--weights', help="weights file (default: the options file's)")
    parser.add_argument('--image', default='datasets/demo/test/lq/noise/chelsea.png', help='image to restore')
    parser.add_argument('--out', default='bench/figures/app.jpg', help='screenshot file (.jpg or .png)')
    parser.add_argument('--chromium', default='/usr/bin/chromium', help='Chromium executable')
    parser.add_argument('--width', type=int, default=1280, help='browser window width (pixels)')
    parser.add_argument('--quality', type=int, default=80, help='JPEG quality')
    parser.add_argument('--timeout', type=float, default=300, help='seconds to wait for the restoration')
    args = parser.parse_args(argv)
    for what, path in (('--image', args.image), ('--chromium', args.chromium)):
        if not os.path.isfile(path):
            print(f'error: {what} {path}: no such file', file=sys.stderr)
            return 1
    choice = ModelChoice(opt=args.opt, weights=args.weights or '', device='cpu')
    cache = ModelCache('.')
    try:
        cache.get(choice)  # a missing checkpoint fails here, in one line, not inside the browser
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        print(f'error: {err} (train the demo with `make demo`, or give -opt/--weights)', file=sys.stderr)
        return 1
    page = build_app(choice, '.', cache)
    port = free_port()
    page.queue().launch(prevent_thread_lock=True, server_name='127.0.0.1', server_port=port, quiet=True)
    try:
        os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
        seconds = screenshot(f'http://127.0.0.1:{port}/', args.image, args.out, args.chromium, args.width,
                             args.quality, args.timeout)
    finally:
        page.close()
    print(f'{args.out}: {os.path.getsize(args.out) / 1024:.0f} KB; restored {args.image} in {seconds:.1f} s '
          '(click to result)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
