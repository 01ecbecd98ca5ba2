"""One progress display for every long command (`evaluate`, `run`, `clicks`): a tqdm bar with an ETA on a
terminal, and in a log (stderr not a terminal) a line for the first and last case and at most one every
`every_s` seconds in between, so a log of a long run stays short and still says how far it got."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class CaseProgress:
    """Called as each case is stored: ``progress(number, total, case_id)``; ``close()`` at the end."""

    def __init__(self, desc: str, *, enabled: bool = True, every_s: float = 30.0, stream=None):
        self.desc, self.enabled, self.every_s = desc, enabled, every_s
        self.stream = stream or sys.stderr
        self.started = self.last = time.perf_counter()
        self.bar: tqdm | None = None

    def __call__(self, number: int, total: int, case_id: str) -> None:
        if not self.enabled:
            return
        if self.stream.isatty():
            if self.bar is None:
                self.bar = tqdm(total=total, desc=self.desc, unit="case", file=self.stream)
            self.bar.update(number - self.bar.n)
            return
        now = time.perf_counter()
        if number in (1, total) or now - self.last >= self.every_s:
            elapsed = now - self.started
            left = elapsed / number * (total - number)
            print(f"[{number}/{total}] {case_id} done ({self.desc}), {elapsed:.1f} s so far, ETA {left:.0f} s",
                  file=self.stream, flush=True)
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
