"""Helpers for ferkit's tests, benchmarks and documentation tools (as numpy.testing is for numpy's): real media
built from scikit-image's sample photos (media.py), and a real `ferkit serve` driven in headless Chromium
(browser.py). The library itself never imports them."""
