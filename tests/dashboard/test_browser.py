"""The page in a real headless Chromium against a live local fleet: same numbers as `monitor --json`,
a chart that moves, lag that rises when an uploader stops, no console errors, nothing leaves loopback."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(live_fleet, browser, dash):
    dashboard = dash.Dashboard(live_fleet)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.console_errors, page.request_urls = [], []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    page.on("request", lambda request: page.request_urls.append(request.url))
    page.goto(dashboard.url)
    page.wait_for_function("Number(document.body.dataset.ticks || 0) >= 2")
    try:
        yield page
    finally:
        context.close()
        dashboard.stop()


def ticks(page) -> int:
    return page.evaluate("Number(document.body.dataset.ticks || 0)")


def shown(page) -> dict:
    """Every number and label on the page as its raw value: header fields and one dict per city card."""
    return page.evaluate("""() => {
        const header = Object.fromEntries([...document.querySelectorAll('#header [data-field]')].map(e => [e.dataset.field, e.dataset.value]));
        const cities = Object.fromEntries([...document.querySelectorAll('article.city')].map(card => [card.dataset.cityId,
            Object.fromEntries([...card.querySelectorAll('[data-city]')].map(e => [e.dataset.city, e.dataset.value]))]));
        return {header, cities};
    }""")


def test_live_page_matches_monitor_json_moves_and_shows_an_uploader_stop(page, live_fleet, dash):
    cli, monitor, wait_until = dash.cli, dash.monitor, dash.wait_until
    # Header and cards: a tick computed after `before` started and before `after` (two fresh ticks in between).
    before = monitor(live_fleet)
    seen = ticks(page)
    page.wait_for_function(f"Number(document.body.dataset.ticks) >= {seen + 2}")
    on_page = shown(page)
    after = monitor(live_fleet)
    header = on_page["header"]
    assert header["project"] == after["project"] == "dash-test"
    assert header["runtime"] == after["runtime"] == "local" and int(header["fleet_epoch"]) == after["fleet_epoch"]
    assert int(header["totals.sensors_total"]) == after["totals"]["sensors_total"] == 4
    assert int(header["totals.sensors_running"]) == after["totals"]["sensors_running"] == 4
    for key in ("rows", "lake_rows"):
        assert before["totals"][key] <= int(header[f"totals.{key}"]) <= after["totals"][key]
    assert float(header["totals.readings_per_second"]) > 0
    assert set(on_page["cities"]) == {c["city"] for c in after["cities"]}
    for early, late in zip(before["cities"], after["cities"], strict=True):
        card = on_page["cities"][late["city"]]
        assert card["display_name"] == late["display_name"]
        assert int(card["sensors_total"]) == late["sensors_total"] and int(card["sensors_running"]) == late["sensors_running"]
        assert card["uploader_state"] in (early["uploader_state"], late["uploader_state"])
        for key in ("rows", "lake_rows"):
            assert early[key] <= int(card[key]) <= late[key], key
        grown = late["rows"] - early["rows"]  # what one tick (and the reads around it) can add to the lag
        assert 0 <= int(card["lag_rows"]) <= max(early["lag_rows"], late["lag_rows"]) + grown
        assert int(card["dead_lettered"]) == late["dead_lettered"] == 0

    # The selected sensor's chart gains points over 3 s; selecting another sensor draws that one.
    points = int(page.get_attribute("#sensor-chart", "data-points"))
    page.wait_for_timeout(3000)
    assert int(page.get_attribute("#sensor-chart", "data-points")) > points > 0
    other = page.evaluate("[...document.querySelectorAll('#sensor-select option')].map(o => o.value).find(v => v.startsWith('New_York'))")
    page.select_option("#sensor-select", other)
    wait_until(lambda: int(page.get_attribute("#sensor-chart", "data-points")) > 0, 60, "the other sensor's chart")

    # Clicking a sensor's dot on its city's map selects it.
    target = page.evaluate("""() => {
        const card = cards.get('Amsterdam'), sensor = sensors[card.members[1]], box = card.map.getBoundingClientRect();
        return {id: sensor.sensor_id, x: box.left + card.view.x(sensor.longitude) * box.width / card.map.width,
                y: box.top + card.view.y(sensor.latitude) * box.height / card.map.height};
    }""")
    page.mouse.click(target["x"], target["y"])
    wait_until(lambda: page.eval_on_selector("#sensor-select", "e => e.value") == target["id"], 60, "a click on the map to select the sensor")

    dash.artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(dash.artifacts / "dashboard.png"))

    # Stopping Amsterdam's uploader: the card says stopped and its lag rises on the page.
    assert cli(live_fleet, "stop", "uploader-amsterdam").returncode == 0
    card = 'article.city[data-city-id="Amsterdam"]'
    wait_until(lambda: page.get_attribute(f'{card} [data-city="uploader_state"]', "data-value") == "stopped", 60, "the card to show the uploader stopped")
    stopped_lag = int(page.get_attribute(f'{card} [data-city="lag_rows"]', "data-value"))
    wait_until(lambda: int(page.get_attribute(f'{card} [data-city="lag_rows"]', "data-value")) >= stopped_lag + 20, 60, "lag to rise on the page")
    assert cli(live_fleet, "start", "uploader-amsterdam", "--wait", "--no-diagnostics").returncode == 0

    assert page.console_errors == []
    hosts = {urlsplit(url).hostname for url in page.request_urls}
    assert hosts == {"127.0.0.1"}, hosts
