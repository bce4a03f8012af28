"""The first minute in front of a class, in a real browser at 1280 x 720 on the shipped models
(whose presets' results are shipped, so nothing here waits for a model run): the first screen
holds the point, "No thanks" is remembered, every page has its address, the chart's labels do
not overlap, How it works quotes the Read page's numbers, and the tour walks through every view
it names without covering it. Screenshots of each go to test-artifacts/first_minute/.

Uses the server and browser fixtures of test_browser (a server of its own for this module)."""
from __future__ import annotations

import json
import time

import pytest
from selenium.webdriver.common.by import By

from test_browser import ARTIFACTS, browser, server, until  # noqa: F401 - fixtures

APP_SCRIPT = "server.py"
SHIPPED_MODELS = True
SHOTS = ARTIFACTS / "first_minute"
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
WIDTH, HEIGHT = 1280, 720

RECT_JS = """
const r = arguments[0].getBoundingClientRect();
return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height};
"""

# What the first screen must hold, measured in the page: the selected token and what it read,
# the arc between them, a framed cached token, and the chart's headline.
FIRST_SCREEN_JS = """
const box = (el) => { if (!el) return null; const r = el.getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
const view = document.querySelector('#ham-view');
const arc = document.querySelector('.ham-arcs .ham-arc');
const sel = view && view.querySelector('.ham-selected');
const to = arc && view.querySelector('#ham-t' + arc.dataset.to);
const head = [...document.querySelectorAll('[data-testid="stMarkdownContainer"] p')]
  .find((p) => p.textContent.startsWith('Memory vs quality:'));
return {selected: box(sel), read: box(to), arc: box(arc), from: arc && arc.dataset.from, to: arc && arc.dataset.to,
        cached: box(view && view.querySelector('.ham-cached')), headline: box(head), height: window.innerHeight};
"""


def shot(d, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(SHOTS / f"{name}.png"))


@pytest.fixture(scope="module")
def screen(browser):
    """The browser at 1280 x 720 (the page's own viewport, whatever the window's frame)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    yield browser
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def settled(d) -> None:
    """Wait until the script run has finished (no running indicator) and the view is drawn."""
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok"), "no token view")
    until(d, lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'), "the page kept running")
    time.sleep(0.5)


def presenter(d, on: bool) -> None:
    toggle = d.find_element(By.CSS_SELECTOR, ".st-key-presenter input")
    if toggle.is_selected() != on:
        d.execute_script("arguments[0].click();", toggle)
        until(d, lambda d: d.find_element(By.CSS_SELECTOR, ".st-key-presenter input").is_selected() == on,
              "presenter mode did not switch")
        time.sleep(1.0)
        settled(d)


def on_screen(box, height) -> bool:
    return box is not None and box["top"] >= 0 and box["bottom"] <= height


def overlap(a, b) -> bool:
    return a["left"] < b["right"] - 1 and b["left"] < a["right"] - 1 and a["top"] < b["bottom"] - 1 and b["top"] < a["bottom"] - 1


def both_modes(d, url: str):
    """The Read page at `url`, yielded once in each mode (normal, then presenter; left normal)."""
    d.get(url)
    settled(d)
    for mode in (False, True):
        presenter(d, mode)
        yield mode
    presenter(d, False)


def test_first_screen_holds_the_text_its_cache_an_arc_and_the_headline(server, screen):
    d = screen
    for mode in both_modes(d, server):
        d.execute_script("window.scrollTo(0, 0);")
        seen = until(d, lambda d: (lambda s: s if s["arc"] and s["headline"] else None)(d.execute_script(FIRST_SCREEN_JS)),
                     "no arc or no headline")
        shot(d, f"read{'_presenter' if mode else ''}")
        for part in ("selected", "read", "arc", "cached", "headline"):
            assert on_screen(seen[part], HEIGHT), (mode, part, seen[part])
        assert int(seen["to"]) < int(seen["from"])                    # a later token reads an earlier one
        assert not d.find_elements(By.CSS_SELECTOR, ERRORS)
    assert_word_marked(d)


WORD_JS = """
const view = document.querySelector('#ham-view');
const sel = view.querySelector('.ham-selected');
const pieces = (w) => [...view.querySelectorAll('[data-w="' + w + '"]')].map((e) => e.dataset.i);
return {selected: sel.dataset.i, word: sel.dataset.w === undefined ? null : pieces(sel.dataset.w),
        marked: [...view.querySelectorAll('.ham-word')].map((e) => e.dataset.i),
        other: [...new Set([...view.querySelectorAll('[data-w]')].map((e) => e.dataset.w))]
          .find((w) => w !== sel.dataset.w)};
"""


def assert_word_marked(d) -> None:
    """The selected token's word, when it is in pieces (the default preset's first view picks a
    piece of "Vandermeer"), is outlined as one; a click on a piece of another word moves it there."""
    seen = d.execute_script(WORD_JS)
    assert seen["word"] and len(seen["word"]) > 1, seen                # the first view's token: a piece of a name
    assert sorted(seen["marked"]) == sorted(i for i in seen["word"] if i != seen["selected"])
    other = d.find_element(By.CSS_SELECTOR, f'#ham-view [data-w="{seen["other"]}"]')
    index = other.get_attribute("data-i")                             # the view is drawn again after the click
    d.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", other)
    until(d, lambda d: (lambda s: s["selected"] == index and sorted(s["marked"]) == sorted(
        i for i in s["word"] if i != s["selected"]))(d.execute_script(WORD_JS)), "the clicked word was not marked as one")
    settled(d)
    shot(d, "word_selected")


def test_no_thanks_is_remembered_by_this_browser(server, screen):
    d = screen
    d.get(server)
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".st-key-w_tour_skip button"), "no tour offer")[0].click()
    until(d, lambda d: not d.find_elements(By.CSS_SELECTOR, ".st-key-tour_offer"), "the offer stayed")
    for address in (server, f"{server}/step"):                         # a reload, a new session
        d.get(address)
        until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebar'] .st-key-presenter"), "no sidebar")
        time.sleep(1.5)
        offers = d.find_elements(By.CSS_SELECTOR, ".st-key-tour_offer")
        assert not any(o.is_displayed() for o in offers), address
    assert d.find_elements(By.CSS_SELECTOR, ".st-key-w_tour_restart button")    # the tour is still there


def test_every_page_opens_at_its_own_address(server, screen):
    d = screen
    titles = {"read": "Read a text", "step": "Step through", "recall": "Recall lab", "how": "How it works"}
    for path, title in titles.items():
        d.get(f"{server}/{path}")
        until(d, lambda d: d.find_elements(By.TAG_NAME, "h1") and d.find_element(By.TAG_NAME, "h1").text == title,
              f"/{path} did not open {title}")
        assert "Page not found" not in d.find_element(By.TAG_NAME, "body").text, path
    d.get(f"{server}/read?preset=Code+snippet")                        # a link through /read keeps its view
    until(d, lambda d: "def moving_average" in d.find_element(
        By.CSS_SELECTOR, '[data-testid="stTextArea"] textarea').get_attribute("value"), "/read lost the link's text")


CHART_JS = """
const plot = document.querySelector('.st-key-mq_chart .js-plotly-plot');
if (!plot || !plot._fullLayout) return null;
const box = (el) => { const r = el.getBoundingClientRect();
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, text: el.textContent}; };
const labels = [...plot.querySelectorAll('.legendtext, .gtitle, .annotation-text, .g-xtitle text, .g-ytitle text')]
  .filter((el) => el.textContent.trim()).map(box);
const traces = plot._fullData.map((t) => t.name);
const star = traces.indexOf('current threshold');
const points = star < 0 ? [] : [...plot.querySelectorAll('.scatterlayer .trace')][star].querySelectorAll('.point');
const y = plot._fullLayout.yaxis.range;
const ham = plot._fullData[traces.indexOf('HAM surprise')].y;
return {labels, star: points.length ? box(points[0]) : null, range: y, ham: [...ham], traces,
        others: plot._fullData.filter((t) => !['HAM surprise', 'current threshold'].includes(t.name) && t.y)
          .map((t) => [...t.y].filter((v) => v !== null))};
"""


def test_chart_labels_never_overlap_and_the_axis_stays_on_the_curves(server, screen):
    d = screen
    for mode in both_modes(d, server):
        chart = until(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".st-key-mq_chart .js-plotly-plot .legendtext"),
                      "no chart")[0]
        d.execute_script("arguments[0].scrollIntoView({block: 'center'});", chart)
        time.sleep(1.0)
        c = until(d, lambda d: d.execute_script(CHART_JS), "chart not drawn")
        shot(d, f"chart{'_presenter' if mode else ''}")
        labels = c["labels"]
        assert len(labels) >= 5 and c["star"]
        for i, a in enumerate(labels):
            assert not overlap(a, c["star"]), (a["text"], "covers the star")
            for b in labels[i + 1:]:
                assert not overlap(a, b), (a["text"], b["text"])
        lo, hi = c["range"]
        assert all(lo <= y <= hi for y in c["ham"])                   # the curve that matters is all on the axis
        outside = [y for ys in c["others"] for y in ys if not lo <= y <= hi]
        assert not outside or any(name.startswith("off the scale") for name in c["traces"])   # and outliers are marked


def test_how_it_works_quotes_the_read_pages_reads(server, screen):
    d = screen
    d.get(server)
    settled(d)
    bars = d.find_element(By.ID, "ham-reads")
    key = int(bars.find_element(By.CSS_SELECTOR, ".ham-bar-label").text.split()[0].lstrip("#"))
    weight = float(bars.find_element(By.CSS_SELECTOR, ".ham-bar-value").text)
    title = next(e.text for e in d.find_elements(By.CSS_SELECTOR, "[data-testid='stMarkdownContainer'] strong")
                 if " reads, layer " in e.text)
    d.find_element(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a[href$="/how"]').click()   # the same session
    step = until(d, lambda d: d.find_elements(By.ID, "how-step-6"), "no layer diagram")[0]
    values = json.loads(step.get_attribute("data-values"))
    assert values["reads"][0][0] == key and values["reads"][0][1] == pytest.approx(weight, abs=6e-4)
    header = d.find_element(By.CSS_SELECTOR, "#how-diagram").text
    assert f"layer {title.split(' reads, layer ')[1].split(',')[0]} of" in header
    assert f"{weight:.0%}" in d.find_element(By.ID, "how-step-6").text or values["head"] is not None
    shot(d, "how")


def test_the_tour_keeps_the_text_and_shows_every_view_it_names(server, screen):
    from app.widgets.tour import STEPS

    titles = {"read": "Read a text", "recall": "Recall lab", "how": "How it works"}
    d = screen
    d.get(f"{server}/?preset=Code+snippet")                            # the teacher's text, not the tour's example
    settled(d)
    d.find_element(By.CSS_SELECTOR, ".st-key-w_tour_restart button").click()
    for n, step in enumerate(STEPS):
        card = until(d, lambda d: (lambda c: c[0] if c and f"Tour {n + 1} of" in c[0].text else None)(
            d.find_elements(By.CSS_SELECTOR, ".st-key-tour_card")), f"step {n + 1} not shown")
        until(d, lambda d: d.find_element(By.TAG_NAME, "h1").text == titles[step.page], f"step {n + 1}: wrong page")
        target = until(d, lambda d: d.find_elements(By.CSS_SELECTOR, step.target), f"step {n + 1}: {step.target} missing")[0]
        until(d, lambda d: (lambda r: r["height"] > 0 and r["top"] < HEIGHT and r["bottom"] > 0
                            and (r["top"] >= 0 or r["height"] > HEIGHT))(d.execute_script(RECT_JS, target)),
              f"step {n + 1}: {step.target} is not on screen")
        time.sleep(0.8)                                                  # the smooth scroll ends
        shot(d, f"tour_{n + 1}")
        assert not overlap(d.execute_script(RECT_JS, card), d.execute_script(RECT_JS, target)), f"step {n + 1} covered"
        assert not d.find_elements(By.CSS_SELECTOR, ERRORS), f"step {n + 1}"
        if step.page == "read":                                          # the teacher's text is still there
            area = d.find_element(By.CSS_SELECTOR, '[data-testid="stTextArea"] textarea')
            assert "def moving_average" in area.get_attribute("value"), f"step {n + 1}"
        if step.target == ".st-key-recall_chart":
            assert target.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace")
        if n < len(STEPS) - 1:
            card.find_element(By.CSS_SELECTOR, ".st-key-w_tour_next button").click()
    d.find_element(By.CSS_SELECTOR, ".st-key-w_tour_end button").click()
    until(d, lambda d: not d.find_elements(By.CSS_SELECTOR, ".st-key-tour_card"), "the tour did not end")
