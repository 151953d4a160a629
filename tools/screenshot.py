"""Screenshots of the web app's result page: start `ferkit serve`, open the page in headless Chromium, upload a
photo with four real faces (ferkit.testing.media.multi_face_frame) and save the page once the result is shown, at
a desktop width and at a phone's.

    .venv/bin/python tools/screenshot.py          # docs/screenshot.png (1280 wide), docs/screenshot-phone.png (390)
    .venv/bin/python tools/screenshot.py --model runs/x --out /tmp/shot.png --phone-out /tmp/phone.png

Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and selenium (the test
extra). Prints the faces found and where the screenshots went. The PNGs are saved with a 256-colour palette,
so they stay small enough for the repository (a few hundred kB at most).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import cv2

from ferkit.testing.browser import browser_missing, chromium, running_server, upload_photo
from ferkit.testing.media import multi_face_frame

REPO = Path(__file__).resolve().parents[1]
PHONE = (390, 844)


def write_group_jpg(path) -> Path:
    """The four-face frame (astronaut, cameraman, astronaut mirrored, astronaut smaller) as a JPEG file."""
    cv2.imwrite(str(path), multi_face_frame()[0], [cv2.IMWRITE_JPEG_QUALITY, 92])
    return Path(path)


def save_small_png(png: bytes, out: Path) -> None:
    """The screenshot with a 256-colour palette (text and boxes stay sharp; a tenth of the bytes)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)


def shoot(driver, url, photo, width: int, height: int, mobile: bool) -> tuple[list[str], bytes]:
    """Upload the photo at this window size; (the face labels shown, the screenshot's PNG bytes)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    from selenium.webdriver.common.by import By

    upload_photo(driver, url, photo)
    labels = [label.text.replace("\n", " ") for label in driver.find_elements(By.CSS_SELECTOR,
                                                                                "#photo-stage .face-label")]
    return labels, driver.get_screenshot_as_png()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="model to serve (default: the shipped default)")
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"), help="desktop PNG to write")
    parser.add_argument("--phone-out", default=str(REPO / "docs" / "screenshot-phone.png"),
                        help=f"phone PNG to write ({PHONE[0]}×{PHONE[1]})")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=860)
    args = parser.parse_args(argv)
    missing = browser_missing()
    if missing:
        print(f"screenshot: {missing}", file=sys.stderr)
        return 2
    shots = [(Path(args.out), args.width, args.height, False), (Path(args.phone_out), *PHONE, True)]
    found = []
    with tempfile.TemporaryDirectory() as folder:
        photo = write_group_jpg(Path(folder) / "four-faces.jpg")
        try:
            with running_server(args.model, "--workers", 1) as url, chromium() as driver:
                for out, width, height, mobile in shots:
                    labels, png = shoot(driver, url, photo, width, height, mobile)
                    save_small_png(png, out)
                    found.append(labels)
                    print(f"{width}×{height}: faces {', '.join(labels) or 'none'}; wrote {out} "
                          f"({out.stat().st_size // 1024} kB)")
        except RuntimeError as exc:  # the server did not start: its own message says why
            print(f"screenshot: {exc}", file=sys.stderr)
            return 2
    if not all(found):
        print("screenshot: no face was shown (saved anyway)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
