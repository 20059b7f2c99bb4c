"""Headless-browser smoke test of Dagit as a user sees it: Debian's chromium driven by Playwright's Python package
opens the extraction asset's partitions page and must show the asset, the databases as partitions and how many are
materialized. A screenshot is saved under test-output/ (gitignored)."""

import json
import re
import urllib.request
from pathlib import Path

import pytest

pytest_plugins = ["dagster_server"]
pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
OUTPUT = Path(__file__).parents[1] / "test-output"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium; `./dev.sh setup` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def dismiss_community_popup(url: str) -> None:
    """Dagit's "join the community" dialog covers the page until the NUX is marked seen."""
    req = urllib.request.Request(
        url + "/graphql",
        method="POST",
        headers={"Content-Type": "application/json"},
        data=json.dumps({"query": "mutation { setNuxSeen }"}).encode(),
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert json.loads(r.read())["data"]["setNuxSeen"] is True


def test_asset_partitions_page_shows_databases(dagit_ready, browser):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    dagit = dagit_ready
    shop = dagit.schema.db("shop")
    dismiss_community_popup(dagit.dagster.url)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(f"{dagit.dagster.url}/assets/{'/'.join(dagit.mce_asset)}?view=partitions")
        for db in dagit.databases:  # the partition list: one row per allowed database
            page.get_by_text(db, exact=True).first.wait_for(timeout=60_000)
        page.get_by_text(f"Materialized ({len(dagit.databases)})").wait_for(timeout=30_000)
        # Dagit lays the breadcrumb out after measuring it: on a loaded machine the first frames show it collapsed
        # ("Assets / mce_files"), and once measured too early it stays so until the next resize (a full suite saw
        # it stay collapsed past a 30 s wait): wait, bounded, and resize between waits so that it measures again
        laid_out = r"() => /Assets\s+(e2e_mysql\s+)+mce_files/.test(document.body.innerText)"
        for width in (1400, 1440, 1400):
            try:
                page.wait_for_function(laid_out, timeout=15_000)
                break
            except PlaywrightTimeout:
                page.set_viewport_size({"width": width + 1, "height": 900})  # a resize makes it measure again
        overview = page.inner_text("body")

        page.get_by_text(shop, exact=True).first.click()  # what a user does next: open one database
        page.get_by_text("proposals", exact=True).first.wait_for(timeout=30_000)  # its materialization metadata
        page.wait_for_load_state("networkidle")
        detail = page.inner_text("body")
        # the picture of its tables, keys and view lineage (markdown: Dagit shows it in a dialog), an SVG image that
        # the browser decoded
        page.locator("tr", has_text="picture").get_by_text("Show Markdown").first.click()
        picture = page.locator("img[src^='data:image/svg+xml']").first
        picture.scroll_into_view_if_needed(timeout=30_000)
        picture_width = picture.evaluate("img => img.naturalWidth")
        picture.screenshot(path=str(OUTPUT / "dagit_partition_picture.png"))
        OUTPUT.mkdir(exist_ok=True)
        shot = OUTPUT / "dagit_asset_partitions.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()

    assert re.search(r"Assets\s+(e2e_mysql\s+)+mce_files", overview), overview[:500]  # breadcrumb: the asset
    assert f"{len(dagit.databases)} Partitions" in overview
    assert "Materialized (3)" in overview and "Missing (0)" in overview and "Failed (0)" in overview
    assert all(db in overview for db in dagit.databases)
    assert not any("scratch_" in line for line in overview.splitlines())
    for label in (
        "tables",
        "views",
        "columns",
        "documented_columns_pct",
        "path",
        "checks",
        "tables_and_views",
        "schema_diff",
    ):
        assert re.search(rf"^{label}$", detail, re.M), f"metadata {label!r} not shown:\n{detail[-1500:]}"
    assert re.search(r"^tables\s+3$", detail, re.M) and re.search(r"^views\s+1$", detail, re.M)  # shop's counts
    assert shop in detail and "No partition selected" not in detail
    assert "breaking_schema_changes: passed" in detail and "least_privilege: passed" in detail  # its own checks
    assert "customers" in detail and "paid_orders" in detail  # the table of its tables and views
    assert picture_width > 300
    assert shot.stat().st_size > 10_000


def _screenshot_page(browser, url: str, wait_for: list[str], name: str) -> str:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(url)
        for text in wait_for:
            page.get_by_text(text).first.wait_for(timeout=60_000)
        page.wait_for_load_state("networkidle")
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / name), full_page=True)
        return page.inner_text("body")
    finally:
        page.close()


def test_checks_tab_lists_the_three_checks_and_no_check_step(dagit_ready, browser):
    dagit = dagit_ready
    dismiss_community_popup(dagit.dagster.url)
    body = _screenshot_page(
        browser,
        f"{dagit.dagster.url}/assets/{'/'.join(dagit.mce_asset)}?view=checks",
        ["breaking_schema_changes"],
        "dagit_asset_checks.png",
    )
    for check in ("breaking_schema_changes", "documentation_coverage", "least_privilege"):
        assert check in body, body[-2000:]
    # the checks run in the extraction step itself: the code location has no separate check op or job
    assert "schema_checks" not in body


def test_automation_page_shows_the_schedule_and_sensors(dagit_ready, browser):
    dagit = dagit_ready
    dismiss_community_popup(dagit.dagster.url)
    body = _screenshot_page(
        browser, f"{dagit.dagster.url}/automation", ["e2e_mysql_daily_schedule"], "dagit_automation.png"
    )
    for name in ("e2e_mysql_daily_schedule", "e2e_mysql_schema_sensor", "e2e_mysql_datahub_push_sensor"):
        assert name in body, body[-2000:]
