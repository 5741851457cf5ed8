"""Screenshots of a report's report.html and of its listening test, for the docs.

    python scripts/listening_screenshots.py REPORT_DIR [--out docs]

Opens REPORT_DIR/report.html from disk in headless Chromium (the system's `chromium` and
`chromedriver`, nothing downloaded) and saves `listening-report.png`; then serves the MUSHRA
test over REPORT_DIR on a free port of 127.0.0.1, starts a session, moves the sliders of the
first trial and saves `listening-test.png`. Nothing is submitted, so no ratings file is written
(the anchor WAVs are, as for any `telugu-codec listen`).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the browser helper lives with the tests

from telugu_codec.listening.plan import load_items  # noqa: E402
from telugu_codec.listening.server import ListeningTest, make_server  # noqa: E402
from tests.browser import chromium, missing, screenshot, wait_for  # noqa: E402

LOADED = "return [...document.querySelectorAll('{sel}')].every(a => a.readyState >= 1)"


def small(path: Path) -> Path:
    """Rewrite the PNG with a 256-colour palette (a fraction of the size, for the repo)."""
    from PIL import Image

    with Image.open(path) as im:
        im.convert("RGB").quantize(256).save(path, optimize=True)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument(
        "--max-height", type=int, default=2000, help="crop report.html's shot to this (px)"
    )
    args = parser.parse_args()
    why = missing()
    if why:
        sys.exit(f"error: {why}")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    server = make_server(ListeningTest(args.report_dir, load_items(args.report_dir)), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with chromium(args.width, 900) as driver:
            driver.get((args.report_dir / "report.html").resolve().as_uri())
            wait_for(driver, LOADED.format(sel="audio"))
            print(small(screenshot(driver, args.out / "listening-report.png", args.max_height)))
            driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
            wait_for(driver, "return document.getElementById('trial-count').textContent !== '?'")
            driver.find_element(By.ID, "rater").send_keys("docs")
            driver.find_element(By.ID, "begin").click()
            wait_for(driver, "return document.body.dataset.state === 'trial'")
            wait_for(driver, LOADED.format(sel="#trial audio"))
            sliders = driver.find_elements(By.CSS_SELECTOR, "#sliders input[type=range]")
            for i, slider in enumerate(sliders):  # a plausible spread of answers
                slider.send_keys(Keys.END if i == 1 else Keys.ARROW_RIGHT * (15 + 11 * i % 70))
            print(small(screenshot(driver, args.out / "listening-test.png")))
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
