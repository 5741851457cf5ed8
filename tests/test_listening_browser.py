"""report.html and the listening test in a real browser (headless Chromium from the system).

Skips only when selenium, chromium or chromedriver is missing (`make sysdeps` installs them).
"""

from __future__ import annotations

import threading
from urllib.parse import unquote

import pytest
import soundfile as sf

from telugu_codec.listening.plan import load_items
from telugu_codec.listening.ratings import load_ratings
from telugu_codec.listening.server import ListeningTest, make_server

from .browser import chromium, missing, screenshot, wait_for
from .listening_helpers import SYSTEMS, tiny_report

# a few seconds on an idle machine (most of it starting Chromium)
pytestmark = [pytest.mark.skipif(missing() is not None, reason=str(missing())), pytest.mark.slow]

ALL_LOADED = (
    "return [...document.querySelectorAll('{sel}')]"
    ".every(a => a.readyState >= 1 || a.error !== null)"
)
AUDIO_STATE = (
    "return [...document.querySelectorAll('{sel}')]"
    ".map(a => [a.getAttribute('src'), a.readyState, a.duration, a.error && a.error.code])"
)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (starting it is the slow part)."""
    with chromium() as driver:
        yield driver


def test_report_html_plays_every_file_from_disk(tmp_path, browser):
    tiny_report(tmp_path)
    driver = browser
    driver.get((tmp_path / "report.html").as_uri())
    players = driver.execute_script("return document.querySelectorAll('audio').length")
    assert players == 2 * (1 + len(SYSTEMS))  # two files: the reference and each system
    wait_for(driver, ALL_LOADED.format(sel="audio"))
    for src, state, duration, error in driver.execute_script(AUDIO_STATE.format(sel="audio")):
        assert error is None and state >= 1, src  # HAVE_METADATA at least
        assert duration == pytest.approx(sf.info(tmp_path / unquote(src)).duration, abs=1e-3)
    images = "return [...document.images].map(i => i.complete && i.naturalWidth > 0)"
    assert all(driver.execute_script(images))
    shot = screenshot(driver, tmp_path / "shots" / "report.png")
    assert shot.read_bytes().startswith(PNG)


def _move(slider, steps: int) -> None:
    from selenium.webdriver.common.keys import Keys

    slider.send_keys(Keys.END if steps >= 100 else Keys.ARROW_RIGHT * steps)


def test_a_listening_trial_through_the_server(tmp_path, browser):
    from selenium.webdriver.common.by import By

    tiny_report(tmp_path)
    items = load_items(tmp_path)
    server = make_server(ListeningTest(tmp_path, items, "Ann"), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        driver = browser
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait_for(driver, "return document.getElementById('trial-count').textContent === '2'")
        name = driver.find_element(By.ID, "rater")
        assert name.get_attribute("value") == "Ann"  # --rater
        name.clear()
        name.send_keys("Test Rater")
        driver.find_element(By.ID, "begin").click()
        wait_for(driver, "return document.body.dataset.state === 'trial'")
        progress = driver.find_element(By.ID, "progress-text").text
        assert progress == "Trial 1 of 2"
        # the reference and every hidden version load through the server
        wait_for(driver, ALL_LOADED.format(sel="#trial audio"))
        state = driver.execute_script(AUDIO_STATE.format(sel="#trial audio"))
        assert len(state) == 1 + len(SYSTEMS) + 2  # reference; hidden reference, anchor
        seconds = {round(i.seconds, 3) for i in items}
        for src, ready, duration, error in state:
            assert error is None and ready >= 1 and round(duration, 3) in seconds, src
        sliders = driver.find_elements(By.CSS_SELECTOR, "#sliders input[type=range]")
        submit = driver.find_element(By.ID, "submit")
        for i, slider in enumerate(sliders):
            assert not submit.is_enabled()  # until every slider has been moved
            _move(slider, 100 if i == 0 else 7 * i + 3)
        assert submit.is_enabled()
        values = [int(s.get_attribute("value")) for s in sliders]
        assert values == [100] + [7 * i + 3 for i in range(1, len(sliders))]
        screenshot(driver, tmp_path / "shots" / "test.png")
        submit.click()
        wait_for(
            driver,
            "return document.getElementById('progress-text').textContent == 'Trial 2 of 2'",
        )
        # the answer is on disk, under the rater's own file, mapped back to the systems
        files = sorted(tmp_path.glob("mushra-*.json"))
        assert len(files) == 1 and files[0].name.startswith("mushra-Test-Rater-")
        saved = load_ratings(files[0])
        assert saved.rater == "Test Rater" and len(saved.trials) == 1
        trial = saved.trials[0]
        assert [trial.scores[name] for name in trial.order] == values
        # the second trial finishes the test
        for slider in driver.find_elements(By.CSS_SELECTOR, "#sliders input[type=range]"):
            _move(slider, 50)
        driver.find_element(By.ID, "submit").click()
        wait_for(driver, "return document.body.dataset.state === 'done'")
        assert driver.find_element(By.ID, "saved-file").text == files[0].name
        assert load_ratings(files[0]).complete
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "shots" / "test.png").read_bytes().startswith(PNG)
