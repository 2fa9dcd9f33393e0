"""Headless Chromium for the status page's tests: Debian's `chromium` and `chromium-driver` (installed by
`.ci/run`), driven by Selenium. Nothing is downloaded: the browser and its driver are given by path, so
Selenium's own driver manager never runs. Missing, the tests skip with the reason, except under CI=true,
where they fail."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import IN_CI

CHROMIUM = os.environ.get("OVFSTORE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = os.environ.get("OVFSTORE_TEST_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"

#: Where the tests leave what a person looks at (the page's screenshot): `test-output/` of the checkout.
OUTPUT = Path(os.environ.get("OVFSTORE_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output"))


def _missing() -> str | None:
    missing = [p for p in (CHROMIUM, DRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        return f"{', '.join(missing)} not found; apt-get install chromium chromium-driver (as .ci/run does)"
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    why = _missing()
    if why is not None:
        if IN_CI:
            pytest.fail(f"the browser tests are required under CI=true but {why}", pytrace=False)
        pytest.skip(why)
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI and on the developers' machines
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1600,1300",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
