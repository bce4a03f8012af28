"""Each page's own working state in the session (the step tape, the curve's stage, the recall
run, the lab's training, the Read page's link and first view, the tour's step), by its keys in
app.session.state.Key."""
from __future__ import annotations

from typing import Any, Optional

from app.session.state import Key, put, take, value


# The Read page.
def link_loaded() -> bool:
    """Whether this session has read its address's view already (once, on its first run)."""
    return bool(value(Key.LINK_LOADED))


def set_link_loaded() -> None:
    put(LINK_LOADED=True)


def first_view_for() -> Optional[str]:
    """The text whose first view (layer and token) was chosen."""
    return value(Key.FIRST_VIEW_FOR)


def set_first_view_for(text_key: Optional[str]) -> None:
    put(FIRST_VIEW_FOR=text_key)


def link_key() -> tuple:
    """(text key, stored text's key) of the last pasted text put in the store for a link."""
    return value(Key.LINK_KEY)


def set_link_key(text_key: str, stored: Optional[str]) -> None:
    put(LINK_KEY=(text_key, stored))


# Step through.
def step_tape():
    """This session's Tape (app.engine.stepper), None before the first."""
    return value(Key.STEP_TAPE)


def set_step_tape(tape) -> None:
    put(STEP_TAPE=tape)


def step_timer() -> bool:
    """Whether the player's timer runs."""
    return bool(value(Key.STEP_TIMER))


def set_step_timer(on: bool) -> None:
    put(STEP_TIMER=on)


# The memory-quality chart and the recall lab.
def curve_stage() -> Optional[tuple]:
    """(text key, stage) the chart was last drawn at."""
    return value(Key.CURVE_STAGE)


def set_curve_stage(stage: tuple) -> None:
    put(CURVE_STAGE=stage)


def recall_done() -> Any:
    """The recall lab's last run settings."""
    return value(Key.RECALL_DONE)


def set_recall_done(args) -> None:
    put(RECALL_DONE=args)


# Learning to look up.
def lab_trainer():
    """This session's LiveTraining (None: the recorded run is shown)."""
    return value(Key.LAB_TRAINER)


def set_lab_trainer(trainer) -> None:
    put(LAB_TRAINER=trainer)


def lab_choice() -> tuple[int, float, Optional[str]]:
    """(seed, threshold, speed label) chosen for a new training; a click may arrive without the
    other widgets' states (a client that sends only it), hence the defaults."""
    return int(value(Key.W_LAB_SEED)), float(value(Key.W_LAB_TAU)), value(Key.W_LAB_SPEED)


def lab_polling() -> bool:
    return bool(value(Key.LAB_POLLING))


def set_lab_polling(on: bool) -> None:
    put(LAB_POLLING=on)


# The tour.
def tour_step() -> Optional[int]:
    """The tour's step shown (None: no tour)."""
    return value(Key.TOUR)


def set_tour_step(n: Optional[int], page: Optional[str] = None) -> None:
    """Show step n (None: end the tour); page: the page it opens (taken once by take_tour_page)."""
    put(TOUR=n, TOUR_OFFERED=True)
    if page is not None:
        put(TOUR_GOTO=page)


def take_tour_page() -> Optional[str]:
    """The page a tour step asked to open, once."""
    return take(Key.TOUR_GOTO)


def tour_preset() -> Optional[str]:
    """The tour's example text (a preset's name)."""
    return value(Key.TOUR_PRESET)


def set_tour_preset(name: str) -> None:
    put(TOUR_PRESET=name)


def tour_offered() -> bool:
    return bool(value(Key.TOUR_OFFERED))


def tour_declined() -> bool:
    return bool(value(Key.TOUR_DECLINED))


def set_tour_declined() -> None:
    put(TOUR_DECLINED=True)
