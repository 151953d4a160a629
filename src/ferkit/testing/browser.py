"""Helpers for the web tests and tools/screenshot.py: a real `ferkit serve` on 127.0.0.1 and headless Chromium.

Chromium and ChromeDriver come from Debian's packages `chromium` and `chromium-driver` (/usr/bin/chromium,
/usr/bin/chromedriver); Selenium drives them with those paths set explicitly, so nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("FERKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FERKIT_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                  "--disable-dev-shm-usage", "--window-size=1280,1000",
                  # a synthetic camera (a test pattern) answers getUserMedia, and the permission prompt is skipped
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} not installed (Debian package {package}: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerUrl(str):
    """A running server's base URL; ``pid`` is its process id."""

    pid: int


@contextlib.contextmanager
def running_server(model, *args, timeout: float = 90.0, env: dict | None = None):
    """`ferkit serve` in a subprocess on a free port of 127.0.0.1; yields its base URL (a ServerUrl), stops it
    afterwards with SIGTERM (SIGKILL if it has not stopped within 15 s)."""
    port = free_port()
    log = tempfile.TemporaryFile()
    command = [sys.executable, "-m", "ferkit.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--model", str(model), "--log-level", "warning", *map(str, args)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    url = ServerUrl(f"http://127.0.0.1:{port}")
    url.pid = process.pid
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"ferkit serve exited with {process.returncode}:\n{log.read().decode()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"ferkit serve did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextlib.contextmanager
def chromium():
    """A Selenium WebDriver on headless Debian Chromium with a fresh profile folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ferkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for driver.get_log("browser")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def write_astronaut_jpg(path) -> Path:
    """scikit-image's astronaut photo (Eileen Collins, smiling; public domain) as a JPEG file."""
    import cv2
    from skimage import data

    path = Path(path)
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def upload_photo(driver, url: str, photo, timeout: float = 60.0):
    """Open the page, upload photo through its file input, wait for the result; returns the face boxes."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    wait = WebDriverWait(driver, timeout)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    driver.find_element(By.ID, "photo-input").send_keys(str(Path(photo).resolve()))
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-photo") in ("done", "error"))
    return driver.find_elements(By.CSS_SELECTOR, "#photo-stage .face-box")
