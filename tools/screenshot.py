"""Screenshot of the web app's result page: start `ferkit serve`, open the page in headless Chromium, upload
scikit-image's astronaut photo and save the page once the result is shown.

    .venv/bin/python tools/screenshot.py                      # docs/screenshot.png with the shipped default model
    .venv/bin/python tools/screenshot.py --model runs/x --out /tmp/shot.png

Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and selenium (the test
extra). Prints the face found and where the screenshot went.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ferkit.testing.browser import browser_missing, chromium, running_server, upload_photo, write_astronaut_jpg

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="model to serve (default: the shipped default)")
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"), help="PNG to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=860)
    args = parser.parse_args(argv)
    missing = browser_missing()
    if missing:
        print(f"screenshot: {missing}", file=sys.stderr)
        return 2
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as folder:
        photo = write_astronaut_jpg(Path(folder) / "astronaut.jpg")
        try:
            with running_server(args.model, "--workers", 1) as url, chromium() as driver:
                driver.set_window_size(args.width, args.height)
                labels = [box.text for box in upload_photo(driver, url, photo)]
                out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(out))
        except RuntimeError as exc:  # the server did not start: its own message says why
            print(f"screenshot: {exc}", file=sys.stderr)
            return 2
    if not labels:
        print(f"screenshot: no face was shown (saved {out} anyway)", file=sys.stderr)
        return 1
    print(f"faces: {', '.join(labels)}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
