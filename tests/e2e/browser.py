"""A real browser without a Python dependency: Debian's `chromium`, headless, from its command line (issue 9.8).

`--dump-dom` prints the DOM after the page's scripts ran, so a Vue app such as the Prefect UI is read as rendered:
`--virtual-time-budget` lets the page run up to that many milliseconds of its own time, and virtual time stands
still while a request is in flight, so the API's answers are in the DOM before it is printed. The screenshot is
taken in the same run, so the picture is the DOM that was read. `--run-all-compositor-stages-before-draw` puts the
UI's fade-in transitions on that virtual clock too: without it most pictures of a busy machine caught the page
half faded in (6 of 8 dashboards), with it none did (20 of 20 renders complete, 3 s each). Each run gets a fresh
profile, so nothing of one page reaches the next.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser

BUDGET_MS = 15000
WINDOW = "1400,1000"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--hide-scrollbars", "--run-all-compositor-stages-before-draw", f"--window-size={WINDOW}",
         f"--virtual-time-budget={BUDGET_MS}")


def chromium() -> str | None:
    """The path of the system's chromium (Debian's package), or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(url: str, screenshot=None, timeout: float = 90) -> str:
    """The rendered DOM of `url` as HTML text; with `screenshot` (a path), a PNG of the same render at WINDOW
    pixels is written there. Raises RuntimeError when chromium is missing, fails or outlasts `timeout` seconds."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    picture = [f"--screenshot={screenshot}"] if screenshot else []
    with tempfile.TemporaryDirectory(prefix="leadflow-chromium-") as profile:
        # its own session, so a hung render is stopped with every process chromium started (renderer, GPU, zygote)
        proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", *picture, "--dump-dom", url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            dom, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"chromium did not finish {url} within {timeout:g} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode} on {url}: {err.strip()[-500:]}")
    return dom


@dataclass
class Page:
    """A rendered page read back: its visible text (whitespace folded) and its <table>s, each as
    {"headers": [str], "rows": [[str]]}."""
    html: str
    text: str = ""
    tables: list[dict] = field(default_factory=list)


class _Reader(HTMLParser):
    SKIP = {"script", "style", "noscript", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.words: list[str] = []
        self.tables: list[dict] = []
        self._open: list[dict] = []  # tables being read (a table may hold another)
        self._cell: list[str] | None = None
        self._header = False
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skipping += 1
        elif tag == "table":
            self._open.append({"headers": [], "rows": [], "_row": None})
        elif self._open and tag == "tr":
            self._open[-1]["_row"] = []
        elif self._open and tag in ("td", "th"):
            self._cell, self._header = [], tag == "th"

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in ("td", "th") and self._open and self._cell is not None:
            value = " ".join(" ".join(self._cell).split())
            table = self._open[-1]
            if self._header:
                table["headers"].append(value)
            elif table["_row"] is not None:
                table["_row"].append(value)
            self._cell = None
        elif tag == "tr" and self._open:
            table = self._open[-1]
            if table["_row"]:
                table["rows"].append(table["_row"])
            table["_row"] = None
        elif tag == "table" and self._open:
            table = self._open.pop()
            del table["_row"]
            self.tables.append(table)

    def handle_data(self, data):
        if self._skipping:
            return
        self.words.append(data)
        if self._cell is not None:
            self._cell.append(data)


def read(html: str) -> Page:
    """The page's visible text and tables, parsed from `html` (the standard library's parser)."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return Page(html=html, text=" ".join(" ".join(reader.words).split()), tables=reader.tables)
