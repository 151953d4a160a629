"""End to end in real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) against a real
`ferkit serve` on 127.0.0.1: photo upload, messages for no face and bad files, live webcam mode (Chromium's
synthetic camera) and video upload.

Skipped, with the reason, only where /usr/bin/chromium or /usr/bin/chromedriver is not installed
(`apt-get install chromium chromium-driver`; .ci/run does it).
"""

from __future__ import annotations

import cv2
import pytest

from ferkit.labels import EMOTIONS
from ferkit.testing.browser import browser_missing, chromium, running_server, upload_photo, write_astronaut_jpg
from ferkit.testing.media import DEFAULT_MODEL, make_checkpoint, no_face_images, video_frames, write_video

MISSING = browser_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"browser test needs headless Chromium: {MISSING}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, whether the real default model is served). Without the shipped default model, a small untrained
    checkpoint stands in: then any of the seven labels is right."""
    real = DEFAULT_MODEL.is_file()
    model = "default" if real else make_checkpoint(tmp_path_factory.mktemp("web-model") / "tiny.pt")
    with running_server(model, "--workers", 2, "--threads", 1) as url:
        yield url, real


@pytest.fixture(scope="module")
def browser(served):
    with chromium() as driver:
        yield driver


def test_astronaut_photo_gets_a_box_label_and_bars(served, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, real = served
    boxes = upload_photo(browser, url, write_astronaut_jpg(tmp_path / "astronaut.jpg"))
    browser.save_screenshot(str(tmp_path / "astronaut-result.png"))
    assert (tmp_path / "astronaut-result.png").stat().st_size > 10_000
    assert len(boxes) == 1, browser.find_element(By.ID, "message").text
    box = boxes[0]
    assert box.is_displayed() and box.size["width"] > 20 and box.size["height"] > 20
    label = box.find_element(By.CLASS_NAME, "face-label").text
    emotion, score = label.split()
    assert emotion in EMOTIONS and 0 < float(score) <= 1
    if real:
        assert emotion == "happy"
    card = browser.find_element(By.CSS_SELECTOR, "#photo-faces .face-card")
    rows = card.find_elements(By.CLASS_NAME, "bar-row")
    assert [r.get_attribute("data-label") for r in rows] == list(EMOTIONS)
    top = card.find_elements(By.CSS_SELECTOR, ".bar-row.top")
    assert len(top) == 1 and top[0].get_attribute("data-label") == emotion
    assert browser.find_element(By.ID, "photo-download").get_attribute("href").startswith("data:image/jpeg")


def test_no_face_and_bad_file_give_clear_messages(served, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = served
    coffee = tmp_path / "coffee.jpg"
    cv2.imwrite(str(coffee), no_face_images()[0])
    assert upload_photo(browser, url, coffee) == []
    message = browser.find_element(By.ID, "message")
    assert message.is_displayed() and "No face found" in message.text and "warn" in message.get_attribute("class")

    notes = tmp_path / "notes.jpg"
    notes.write_text("this is not a photo")
    upload_photo(browser, url, notes)
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-photo") == "error"
    message = browser.find_element(By.ID, "message")
    assert "not an image" in message.text and "error" in message.get_attribute("class")


def test_webcam_mode_sends_frames_and_shows_frames_per_second(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = served
    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    browser.find_element(By.CSS_SELECTOR, "button[data-tab=webcam]").click()
    browser.find_element(By.ID, "cam-toggle").click()
    WebDriverWait(browser, 30).until(lambda d: float(d.find_element(By.ID, "cam-fps").text) > 0)
    assert browser.find_element(By.ID, "cam-toggle").text == "Stop camera"
    assert not browser.find_element(By.ID, "message").is_displayed()
    browser.find_element(By.ID, "cam-toggle").click()
    assert browser.find_element(By.ID, "cam-toggle").text == "Start camera"


def test_video_upload_gives_annotated_video_and_timeline(served, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = served
    clip = write_video(tmp_path / "clip.mp4", video_frames(12))
    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    browser.find_element(By.CSS_SELECTOR, "button[data-tab=video]").click()
    browser.find_element(By.ID, "video-input").send_keys(str(clip))
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "video-result").is_displayed()
                                     or "error" in d.find_element(By.ID, "message").get_attribute("class"))
    assert browser.find_element(By.ID, "video-result").is_displayed(), browser.find_element(By.ID, "message").text
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "const i = document.getElementById('video-timeline'); return i.complete && i.naturalWidth > 0;"))
    tracks = browser.find_elements(By.CSS_SELECTOR, "#video-tracks li")
    assert tracks and all("face #" in t.text for t in tracks)
    assert "/api/v1/video/" in browser.find_element(By.ID, "video-download").get_attribute("href")
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "const v = document.getElementById('video-player'); return v.readyState >= 1 && v.videoWidth === 640;"))


def test_page_runs_within_its_content_security_policy(served, browser):
    """Runs last: the console of every test above (photo, webcam, video) shows no CSP violation."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = served
    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    messages = [entry["message"] for entry in browser.get_log("browser")]
    assert not [m for m in messages if "Content Security Policy" in m or "Refused to" in m], messages
