"""The guided tour keeps the text on screen (a teacher's own text stays through every step) and
offers its example text instead of swapping to it; its card sits in the sidebar."""
from __future__ import annotations

from app.settings.presets import PRESETS
from tests.app.test_app import app_env, clean, set_text, start  # noqa: F401 - app_env is a fixture

OWN = ("Ms Okafor asked the class about Tiberius Quell. Nobody knew Tiberius Quell, so she wrote "
       "the name on the board: Tiberius Quell, the lighthouse keeper. ")


def test_the_tour_keeps_the_teachers_text_and_asks_before_using_its_own(app_env):
    from app.widgets.tour import STEPS

    at = start()
    set_text(at, OWN)
    clean(at)
    at.button(key="w_tour_start").click().run()
    for n in range(len(STEPS)):
        clean(at)
        assert at.session_state["text"] == OWN, f"step {n + 1} changed the text"
        assert any(f"Tour {n + 1} of" in m.value for m in at.sidebar.markdown)      # beside the page, not over it
        assert any(b.key == "w_tour_example" for b in at.sidebar.button)          # it asks, it does not swap
        if n < len(STEPS) - 1:
            at.button(key="w_tour_next").click().run()
    at.button(key="w_tour_back").click().run()
    at.button(key="w_tour_example").click().run()                                # asked: now the example
    clean(at)
    name = at.session_state["tour_preset"]
    assert at.session_state["text"] == PRESETS[name] and at.session_state["preset"] == name
    assert not any(b.key == "w_tour_example" for b in at.sidebar.button)


def test_presenter_mode_survives_the_tour_changing_page(app_env):
    from app.widgets.tour import STEPS

    at = start()
    at.sidebar.toggle(key="presenter").set_value(True).run()
    at.button(key="w_tour_start").click().run()
    for n in range(len(STEPS) - 1):                 # through the recall lab and How it works
        at.button(key="w_tour_next").click().run()
        clean(at)
        assert at.session_state["presenting"], f"step {n + 2} dropped presenter mode"
        assert any("font-size:130%" in m.value for m in at.markdown), f"step {n + 2}"
