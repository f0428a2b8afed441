"""Progress of a whole stage on stderr: elapsed time and the time left for all of it.

Two shapes of stage, one helper each:

* a stage that streams a known number of items (ingest, heatmaps, logits) shows one tqdm bar
  over all of them (``StageBar``); tqdm's ``elapsed<remaining`` is then the stage's ETA,
  which it cannot show without a total (``0video [00:00, ?video/s]``). ``StageBar`` lets the
  code that counts the items set the total once it knows it.
* a stage made of steps of different kinds and costs (training: epochs, evaluations every
  ``eval_every`` epochs, a final evaluation) estimates what is left from the mean duration
  of each kind measured so far (``StageClock``), so one slow evaluation every five epochs
  is neither ignored nor spread over the epochs that have none.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping

from tqdm import tqdm


def format_duration(seconds: float) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` above (rounded to the second)."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StageClock:
    """Elapsed time of a stage and an estimate of its remaining time.

    ``record(kind, seconds)`` after each step; ``remaining({kind: steps left})`` is the sum
    over kinds of (mean measured seconds of that kind) x (steps of it left). A kind with
    steps left but none measured yet makes the estimate a lower bound.
    """

    def __init__(self, stage: str, clock: Callable[[], float] = time.perf_counter) -> None:
        self.stage = stage
        self._clock = clock
        self._start = clock()
        self._seconds: dict[str, float] = {}
        self._steps: dict[str, int] = {}

    def elapsed(self) -> float:
        return self._clock() - self._start

    def record(self, kind: str, seconds: float, steps: int = 1) -> None:
        self._seconds[kind] = self._seconds.get(kind, 0.0) + seconds
        self._steps[kind] = self._steps.get(kind, 0) + steps

    def remaining(self, left: Mapping[str, int]) -> tuple[float, bool]:
        """(seconds left, whether every kind with steps left has been measured)."""
        seconds, complete = 0.0, True
        for kind, steps in left.items():
            if steps <= 0:
                continue
            if not self._steps.get(kind):
                complete = False
                continue
            seconds += self._seconds[kind] / self._steps[kind] * steps
        return seconds, complete

    def status(self, left: Mapping[str, int]) -> str:
        """``0:41 elapsed, ETA 3:52 for train@jmrn`` (``ETA >3:52`` for a lower bound)."""
        seconds, complete = self.remaining(left)
        bound = "" if complete else ">"
        return (f"{format_duration(self.elapsed())} elapsed, "
                f"ETA {bound}{format_duration(seconds)} for {self.stage}")  # fmt: skip


class StageBar:
    """A tqdm bar on stderr over a whole stage, as a ``progress`` callback.

    Call it with the number of items just done; ``set_total`` once the items are counted
    (e.g. after indexing the raw files), which gives tqdm the stage's remaining time.
    """

    def __init__(self, desc: str, unit: str, total: int | None = None,
                 disable: bool = False) -> None:  # fmt: skip
        self.bar = tqdm(desc=desc, unit=unit, total=total, file=sys.stderr, disable=disable,
                        dynamic_ncols=True)  # fmt: skip

    def set_total(self, total: int) -> None:
        self.bar.total = int(total)
        self.bar.refresh()

    def __call__(self, done: int = 1) -> None:
        self.bar.update(done)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> StageBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def announce_total(progress: Callable[[int], None] | None, total: int) -> None:
    """Tell a ``progress`` callback how many items the stage will report (a ``StageBar``
    shows the time left from it; a plain callable, or None, ignores it)."""
    set_total = getattr(progress, "set_total", None)
    if set_total is not None:
        set_total(total)
