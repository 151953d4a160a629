"""End to end in real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) against a real
`ferkit serve` on 127.0.0.1: photo upload, messages for no face and bad files, live webcam mode (Chromium's
synthetic camera) and video upload; with four faces, numbered boxes that match their cards (hover one, the other
lights up) and labels that never overlap, at a desktop's width and a phone's; the photo recognised again when the
model changes, the footer naming that model's labels; drop zones that the keyboard reaches.

Skipped, with the reason, only where /usr/bin/chromium or /usr/bin/chromedriver is not installed
(`apt-get install chromium chromium-driver`; .ci/run does it).
"""

from __future__ import annotations

import itertools

import cv2
import pytest

from ferkit.classifier.shipped import shipped_models
from ferkit.labels import EMOTIONS, FERPLUS_EMOTIONS
from ferkit.testing.browser import browser_missing, chromium, running_server, upload_photo, write_astronaut_jpg
from ferkit.testing.media import DEFAULT_MODEL, make_checkpoint, multi_face_frame, no_face_images, video_frames
from ferkit.testing.media import write_video

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
    label = browser.find_element(By.CSS_SELECTOR, "#photo-stage .face-label[data-face='1']").text
    number, emotion, score = label.split()
    assert number == "1" and emotion in EMOTIONS and 0 < float(score) <= 1
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
    assert "the haar detector" in message.text  # the other detector, by name
    assert not browser.find_element(By.ID, "photo-download").is_displayed()  # nothing annotated to download

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


def _rects(browser, selector):
    """Bounding rectangles (x, y, w, h) of the elements a selector finds, in page pixels."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => { const r = e.getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; });", selector)


def _apart(rects) -> bool:
    return not any(a[0] < b[0] + b[2] - 0.5 and b[0] < a[0] + a[2] - 0.5 and a[1] < b[1] + b[3] - 0.5
                   and b[1] < a[1] + a[3] - 0.5 for a, b in itertools.combinations(rects, 2))


def _window(browser, width, height, mobile=False):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


@pytest.fixture()
def group_photo(tmp_path):
    path = tmp_path / "four-faces.jpg"
    cv2.imwrite(str(path), multi_face_frame()[0], [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def test_four_faces_numbered_boxes_match_cards_and_hover_links_them(served, browser, group_photo, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, _ = served
    _window(browser, 1280, 1000)
    try:
        boxes = upload_photo(browser, url, group_photo)
        browser.save_screenshot(str(tmp_path / "four-faces.png"))
        cards = browser.find_elements(By.CSS_SELECTOR, "#photo-faces .face-card")
        assert len(boxes) == 4 and len(cards) == 4, browser.find_element(By.ID, "message").text
        numbers = [b.get_attribute("data-face") for b in boxes]
        assert numbers == ["1", "2", "3", "4"]
        assert [c.get_attribute("data-face") for c in cards] == numbers
        assert [c.find_element(By.TAG_NAME, "h3").text.split(":")[0].split()[-2:] for c in cards] == \
            [["Face", n] for n in numbers]
        for number, box, card in zip(numbers, boxes, cards):
            label = browser.find_element(By.CSS_SELECTOR, f"#photo-stage .face-label[data-face='{number}']")
            assert label.text.split()[0] == number and label.is_displayed()
            assert box.get_attribute("data-emotion") == card.get_attribute("data-emotion") == label.text.split()[1]
        # reading order: left to right by each box's left edge
        lefts = [r[0] for r in _rects(browser, "#photo-stage .face-box")]
        assert lefts == sorted(lefts)
        # every card's bars in the model's label order, the same for every face
        orders = {tuple(r.get_attribute("data-label") for r in c.find_elements(By.CLASS_NAME, "bar-row"))
                  for c in cards}
        assert orders == {EMOTIONS}
        assert _apart(_rects(browser, "#photo-stage .face-label"))

        ActionChains(browser).move_to_element(cards[2]).perform()
        lit = [b.get_attribute("data-face") for b in browser.find_elements(By.CSS_SELECTOR, ".face-box.highlight")]
        assert lit == ["3"]
        ActionChains(browser).move_to_element(boxes[0]).perform()
        lit = [c.get_attribute("data-face") for c in browser.find_elements(By.CSS_SELECTOR, ".face-card.highlight")]
        assert lit == ["1"]

        _window(browser, 390, 844, mobile=True)  # a phone: the labels are laid out again for the smaller image
        _labels_laid_out_within(browser, 390)
        browser.save_screenshot(str(tmp_path / "four-faces-phone.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _labels_laid_out_within(browser, width):
    """After a resize to `width`: the page is no wider, and the labels, once the image's new size has laid them out
    again, sit inside the image, apart from each other, each touching its own box, in a readable size."""
    from selenium.webdriver.support.ui import WebDriverWait

    def settled(driver):
        image = _rects(driver, "#photo-image")[0]
        rects = _rects(driver, "#photo-stage .face-label")
        return image[2] <= width and all(image[0] - 0.5 <= r[0] and r[0] + r[2] <= image[0] + image[2] + 0.5
                                         for r in rects)

    WebDriverWait(browser, 10).until(settled)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    labels, boxes = _rects(browser, "#photo-stage .face-label"), _rects(browser, "#photo-stage .face-box")
    assert labels and _apart(labels)
    for (lx, ly, lw, lh), (bx, by, bw, bh) in zip(labels, boxes):  # above, below or inside its own box
        assert lx < bx + bw and bx < lx + lw and by - lh - 1 <= ly <= by + bh + 1
    sizes = browser.execute_script("return [...document.querySelectorAll('#photo-stage .face-label')]"
                                   ".map((e) => parseFloat(getComputedStyle(e).fontSize));")
    assert min(sizes) >= 12


def test_labels_of_three_near_faces_never_overlap_on_desktop_or_phone(served, browser, tmp_path):
    """Three faces side by side, 90 px apart: a label above each box would overlap the next one's."""
    from ferkit.testing.media import ASTRONAUT_HEAD, astronaut, head

    url, _ = served
    canvas = cv2.resize(no_face_images()[0], (480, 320), interpolation=cv2.INTER_AREA)
    tile = cv2.resize(head(astronaut(), ASTRONAUT_HEAD), (105, 112))
    for x in (100, 190, 280):
        canvas[60:172, x:x + 105] = tile
    photo = tmp_path / "three-near.jpg"
    cv2.imwrite(str(photo), canvas)
    try:
        for width, height, mobile in ((1280, 1000, False), (390, 844, True)):
            _window(browser, width, height, mobile)
            assert len(upload_photo(browser, url, photo)) == 3
            _labels_laid_out_within(browser, width)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@pytest.mark.skipif("ferplus" not in shipped_models(), reason="the shipped ferplus model is not there")
def test_changing_the_model_recognises_the_photo_again_and_the_footer_follows(served, browser, group_photo):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, _ = served
    upload_photo(browser, url, group_photo)
    assert "seven expressions: " + ", ".join(EMOTIONS) in browser.find_element(By.TAG_NAME, "footer").text
    Select(browser.find_element(By.ID, "model")).select_by_value("ferplus")
    WebDriverWait(browser, 60).until(lambda d: "ferplus" in d.find_element(By.ID, "photo-meta").text
                                     and d.find_element(By.TAG_NAME, "body").get_attribute("data-photo") == "done")
    assert "eight expressions: " + ", ".join(FERPLUS_EMOTIONS) in browser.find_element(By.TAG_NAME, "footer").text
    cards = browser.find_elements(By.CSS_SELECTOR, "#photo-faces .face-card")
    assert len(cards) == 4
    for card in cards:  # the answer's eight labels, in the model's order
        assert [r.get_attribute("data-label") for r in card.find_elements(By.CLASS_NAME, "bar-row")] == \
            list(FERPLUS_EMOTIONS)
    # changed on another tab: the photo is recognised again on coming back to it
    browser.find_element(By.CSS_SELECTOR, ".tabs button[data-tab=video]").click()
    Select(browser.find_element(By.ID, "model")).select_by_value("default")
    browser.find_element(By.CSS_SELECTOR, ".tabs button[data-tab=photo]").click()
    WebDriverWait(browser, 60).until(lambda d: "default" in d.find_element(By.ID, "photo-meta").text
                                     and d.find_element(By.TAG_NAME, "body").get_attribute("data-photo") == "done")
    card = browser.find_element(By.CSS_SELECTOR, "#photo-faces .face-card")
    assert [r.get_attribute("data-label") for r in card.find_elements(By.CLASS_NAME, "bar-row")] == list(EMOTIONS)


def test_a_model_of_its_own_class_names_shows_its_labels(tmp_path, group_photo):
    """A model trained on a user's own folders (three classes of their own naming): the cards' bars and the
    footer name those three, in the model's order."""
    import torch
    from selenium.webdriver.common.by import By

    from ferkit.classifier.checkpoint import Checkpoint, ModelInfo, save_checkpoint
    from ferkit.models import create_model

    labels = ("yawning", "winking", "frowning")
    torch.manual_seed(0)
    net = create_model("simple_cnn", num_classes=len(labels)).eval()
    model = save_checkpoint(tmp_path / "own.pt", Checkpoint(ModelInfo(arch="simple_cnn", labels=labels),
                                                            net.state_dict()))
    with running_server(model, "--workers", 1, "--threads", 1) as url, chromium() as driver:
        assert len(upload_photo(driver, url, group_photo)) == 4, driver.find_element(By.ID, "message").text
        assert "three expressions: yawning, winking, frowning" in driver.find_element(By.TAG_NAME, "footer").text
        for card in driver.find_elements(By.CSS_SELECTOR, "#photo-faces .face-card"):
            rows = card.find_elements(By.CLASS_NAME, "bar-row")
            assert tuple(r.get_attribute("data-label") for r in rows) == labels
            assert card.get_attribute("data-emotion") in labels


def test_drop_zones_are_reached_and_opened_with_the_keyboard(served, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = served
    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    # count the file chooser's openings instead of opening it (a headless browser has no dialog to show)
    browser.execute_script("window.opened = 0; document.getElementById('photo-input').addEventListener('click',"
                           " (e) => { e.preventDefault(); window.opened += 1; });")
    for _ in range(12):  # Tab through the page (menus, tabs, the API link) until the drop zone has the focus
        if browser.switch_to.active_element.get_attribute("id") == "photo-drop":
            break
        ActionChains(browser).send_keys(Keys.TAB).perform()
    zone = browser.switch_to.active_element
    assert zone.get_attribute("id") == "photo-drop"
    assert browser.execute_script("const s = getComputedStyle(arguments[0]);"
                                  " return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;", zone)
    zone.send_keys(Keys.ENTER)
    zone.send_keys(Keys.SPACE)
    assert browser.execute_script("return window.opened") == 2


def test_page_runs_within_its_content_security_policy(served, browser):
    """Runs last: the console of every test above (photo, webcam, video) shows no CSP violation."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = served
    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    messages = [entry["message"] for entry in browser.get_log("browser")]
    assert not [m for m in messages if "Content Security Policy" in m or "Refused to" in m], messages
