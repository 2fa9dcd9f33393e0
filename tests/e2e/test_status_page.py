"""The operator's status page in headless Chromium, against a running engine with a real agent: log in, see
a domain go from "changes pending" to "up to date" after a VM edit, see an unprotected VM with its reason,
press "Update OVF stores now" as an administrator and see the result, and find no button as a read-only
user (whose forged post is refused too). A screenshot of the page is left in `test-output/`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from ovfstore.engine.config import UpdaterConfig
from ovfstore.model import Cluster, DataCenter, Vm
from tests.e2e.browser import OUTPUT
from tests.e2e.conftest import ADMIN_PASSWORD, READER_PASSWORD, RunningEngine, edit_vm, protected_vm

# A debounce long enough to see the change pending in the page, short enough to see it written.
CONFIG = UpdaterConfig(debounce_s=6.0, backoff_initial_s=0.1)


@pytest.fixture
def site(engines: Callable[..., RunningEngine], tmp_path_factory: pytest.TempPathFactory) -> RunningEngine:
    """gold (2 stores) holding `web`'s disk, all written; `orphan` in a data center without any domain."""
    running = engines(f"sqlite:///{tmp_path_factory.mktemp('page') / 'engine.db'}", updater=CONFIG)
    gold = protected_vm(running)
    inv = running.engine.inventory
    far = inv.data_centers.add(
        DataCenter(name="far", mac_pool_start="56:6f:03:00:00:00", mac_pool_end="56:6f:03:00:00:ff")
    )
    inv.vms.add(Vm(name="orphan", cluster_id=inv.clusters.add(Cluster(name="far", data_center_id=far.id)).id))
    running.engine.updater.update_now(gold, timeout=120)
    _until(lambda: all(st.up_to_date for st in running.engine.updater.status()), "gold up to date")
    return running


def _until(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.5)


def _login(driver: WebDriver, root: str, user: str, password: str) -> None:
    driver.get(root + "/")
    assert driver.current_url.endswith("/login")  # the page needs a login
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()
    _until(lambda: driver.current_url.rstrip("/") == root, "the status page after the login", 30)


def _find(driver: WebDriver, element_id: str, timeout: float = 30) -> WebElement:
    """The element once the page that has it is loaded (a click that posts a form returns before)."""
    _until(lambda: bool(driver.find_elements(By.ID, element_id)), f"#{element_id} on the page", timeout)
    return driver.find_element(By.ID, element_id)


def _domain(driver: WebDriver, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'tr[data-domain="{name}"]')


def _reload_until(driver: WebDriver, name: str, state: str, timeout: float = 90) -> WebElement:
    def there() -> bool:
        driver.refresh()
        return _domain(driver, name).get_attribute("data-state") == state

    _until(there, f"domain {name} {state} on the page", timeout)
    return _domain(driver, name)


def _generations(row: WebElement) -> list[int]:
    cells = row.find_elements(By.CSS_SELECTOR, "table.stores tr td:nth-child(3)")
    return sorted(int(cell.text) for cell in cells)


def test_the_status_page_in_a_browser(site: RunningEngine, browser: WebDriver) -> None:
    root = site.root
    browser.get(root + "/")
    assert browser.find_element(By.ID, "login")  # not logged in: the login form, nothing else
    browser.find_element(By.ID, "username").send_keys("admin@internal")
    browser.find_element(By.ID, "password").send_keys("wrong password")
    browser.find_element(By.ID, "login").click()
    assert "wrong user name or password" in _find(browser, "login-error").text

    _login(browser, root, "admin@internal", ADMIN_PASSWORD)
    gold = _domain(browser, "gold")
    assert gold.get_attribute("data-state") == "up-to-date"
    assert gold.find_element(By.CSS_SELECTOR, '[data-role="recovery-point"]').text == "0 s"
    assert len(gold.find_elements(By.CSS_SELECTOR, "table.stores tr td.mono[title]")) >= 2

    # The unprotected VM, with its reason and where a diskless VM is kept.
    orphan = browser.find_element(By.CSS_SELECTOR, 'tr[data-entity="orphan"]')
    assert orphan.get_attribute("data-reason") == "no_store_domain"
    assert "no disk on any domain that keeps OVF stores" in orphan.text
    assert "every data domain of data center far" in orphan.text
    assert not browser.find_elements(By.CSS_SELECTOR, 'tr[data-entity="web"]')

    # A VM edit: pending during the debounce, then up to date without anyone pressing anything.
    edit_vm(site, "web", "edited from the test")
    browser.refresh()
    gold = _domain(browser, "gold")
    assert gold.get_attribute("data-state") == "pending"
    assert gold.find_element(By.CSS_SELECTOR, '[data-role="pending"]').text == "1"
    assert "changes pending" in gold.text
    gold = _reload_until(browser, "gold", "up-to-date")
    assert gold.find_element(By.CSS_SELECTOR, '[data-role="pending"]').text == "0"
    assert browser.find_elements(By.CSS_SELECTOR, 'tr[data-code="ovf_update_done"]')

    # "Update OVF stores now": waits for the run and shows what it wrote; the stores' generation moves.
    before = _generations(gold)
    gold.find_element(By.CSS_SELECTOR, 'button[data-update="gold"]').click()
    flash = _find(browser, "flash", 120).text
    assert re.search(r"gold: 2 stores written, generation \d+, 1 VM or template", flash), flash
    after = _generations(_domain(browser, "gold"))
    assert min(after) > max(before), (before, after)
    assert _domain(browser, "gold").find_element(By.CSS_SELECTOR, "svg.spark polyline")  # update durations

    OUTPUT.mkdir(parents=True, exist_ok=True)
    shot = OUTPUT / "status-page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")

    browser.find_element(By.CSS_SELECTOR, "header form button").click()  # log out
    _until(lambda: browser.current_url.endswith("/login"), "the login page after logging out", 30)
    browser.get(root + "/")
    assert browser.current_url.endswith("/login")  # the session is gone

    # A read-only user sees everything and no button.
    _login(browser, root, "reader", READER_PASSWORD)
    assert browser.find_element(By.ID, "read-only")
    assert _domain(browser, "gold").get_attribute("data-state") == "up-to-date"
    assert browser.find_element(By.CSS_SELECTOR, 'tr[data-entity="orphan"]')
    assert not browser.find_elements(By.CSS_SELECTOR, "button.update")


def test_a_read_only_user_cannot_update_and_a_foreign_form_is_refused(site: RunningEngine) -> None:
    gold = next(st for st in site.engine.updater.status() if st.name == "gold")
    generations = sorted(store.generation for store in gold.stores)
    with httpx.Client(base_url=site.root, follow_redirects=False) as client:
        assert client.post(f"/update/{gold.domain_id}").headers["location"] == "/login"
        answer = client.post("/login", data={"username": "reader", "password": READER_PASSWORD})
        assert answer.status_code == 303
        page = client.get("/").text
        # One engine on SQLite: it leads the updater, and the page says so.
        assert f'<span id="leader">OVF updater led by engine {site.engine.name} (term' in page
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert csrf is not None
        refused = client.post(f"/update/{gold.domain_id}", data={"csrf": csrf[1]})
        assert refused.status_code == 403
        assert "may only read" in refused.text
    with httpx.Client(base_url=site.root, follow_redirects=False) as client:
        client.post("/login", data={"username": "admin@internal", "password": ADMIN_PASSWORD})
        forged = client.post(f"/update/{gold.domain_id}", data={"csrf": "0" * 64})
        assert forged.status_code == 403
        assert "another site" in forged.text
    gold = next(st for st in site.engine.updater.status() if st.name == "gold")
    assert sorted(store.generation for store in gold.stores) == generations  # nothing was written
