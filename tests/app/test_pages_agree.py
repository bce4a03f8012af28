"""The Read page and How it works quote the same attention for the same token, layer and reads
choice (one head or the heads' mean): the numbers a class sees on one page are the other's."""
from __future__ import annotations

import json
import re

import pytest

from tests.app.test_app import app_env, clean, open_options, start  # noqa: F401 - app_env is a fixture


def read_page_reads(at) -> tuple[str, list[tuple[int, float]]]:
    """The Read page's reads panel: its heading and its (key, weight) bars, largest first."""
    title = next(m.value for m in at.markdown if " reads, layer " in m.value)
    bars = next(h.proto.body for h in at.get("html") if 'id="ham-reads"' in h.proto.body)
    keys = [int(k) for k in re.findall(r'ham-bar-label">#(\d+) ', bars)]
    weights = [float(w) for w in re.findall(r'ham-bar-value">([0-9.]+)<', bars)]
    return title, list(zip(keys, weights))


def how_page_reads(at) -> tuple[dict, str]:
    """Step 6 of the diagram: its numbers and its sentence."""
    svg = next(m.value for m in at.markdown if m.value.startswith("<svg"))
    values = re.search(r'id="how-step-6" class="how-step" data-values="([^"]*)"', svg).group(1)
    words = next(m.value for m in at.markdown if m.value.startswith("**6. Selective attention**"))
    return json.loads(values.replace("&quot;", '"')), words.replace("\\", "")    # markdown escapes


@pytest.mark.parametrize("reads", ["averaged over heads", "head 2"])
def test_how_it_works_quotes_the_read_pages_reads(app_env, reads):
    at = start()
    clean(at)
    open_options(at).radio(key="w_reads").set_value(reads).run()
    T = int(at.number_input(key="w_token").max) + 1
    compared = 0
    for layer, token in ((0, T - 1), (1, T // 2), (0, T // 3), (1, T - 5)):
        at.switch_page("views/read.py").run()
        at.selectbox(key="w_layer").set_value(layer).run()
        at.number_input(key="w_token").set_value(token).run()
        clean(at)
        assert open_options(at).radio(key="w_reads").value == reads        # kept across the page switch
        title, bars = read_page_reads(at) if any('id="ham-reads"' in h.proto.body for h in at.get("html")) else ("", [])
        at.switch_page("views/how.py").run()
        clean(at)
        assert (at.session_state["token"], at.session_state["layer"]) == (token, layer)
        step, words = how_page_reads(at)
        assert step["head"] == (None if reads.startswith("averaged") else int(reads.split()[-1]) - 1)
        shown = [(int(k), w) for k, w in step["reads"] if w >= 0.0005][:len(bars)]
        assert [k for k, _ in shown] == [k for k, _ in bars], (layer, token)
        assert [round(w, 3) for _, w in shown] == pytest.approx([w for _, w in bars], abs=1.1e-3)
        if bars and bars[0][1] >= step["sink"]:
            assert f"({bars[0][1]:.0%})" in words or f"({step['reads'][0][1]:.0%})" in words
            compared += 1
        assert reads in words                                 # it says whose reads it quotes
    assert compared >= 1


def colours(markup: str, prefix: str) -> dict:
    """{token index: background} of a token view's spans."""
    return {int(i): c for i, c in re.findall(rf'id="{prefix}-t(\d+)"[^>]*style="background:(rgb\([^)]*\))', markup)}


def test_a_token_has_one_colour_on_every_page(app_env):
    from tests.app.test_readpage import component_data

    at = start()
    clean(at)
    at.selectbox(key="w_metric").select("min").run()
    read = colours(component_data(at)["html"], "ham")
    at.switch_page("views/how.py").run()
    clean(at)
    how = colours(component_data(at)["html"], "ham")
    at.switch_page("views/step.py").run()
    clean(at)
    step = colours(next(h.proto.body for h in at.get("html") if 'id="step-view"' in h.proto.body), "step")
    n = int(at.metric[0].value.split(" /")[0])            # it opens on the first tokens read
    assert n >= 1
    for i in range(n):                                     # ... in the colours of the other pages
        assert step[i] == read[i] == how[i], i
