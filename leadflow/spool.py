"""R-REG-7 for file names: a file whose path holds a phone number (`回访13912340009.csv`) reaches Prefect — flow-run
name, `path` parameter, logs, events — only under its masked name.

Such a file is hard-linked (copied across file systems) into a folder of its own under the data folder's
`spool/`, named by its content digest, as `回访139****0009.csv`; that path is what the flow run is given, and it
is removed when the run ends, so the spool never keeps a second copy of anyone's number (erasure stays whole).
Any other file is given as it is: nothing to hide, nothing copied.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from leadflow.privacy import has_phone, mask_phones_in_text


def display_name(path: str | Path) -> str:
    """The file's name as LeadFlow shows it anywhere outside the store: phones masked (R-REG-7)."""
    return mask_phones_in_text(Path(path).name)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def spooled(path: str | Path, spool_dir: Path | None = None) -> Iterator[str]:
    """The path to give a flow run for `path` (str): `path` itself when no phone is in it, else a link named
    `display_name(path)` in `spool_dir/<sha256>-<random>/` (default: the data folder's `spool/`), removed
    after the `with` block. Raises OSError when the file cannot be read."""
    source = Path(path)
    if not has_phone(str(source)):
        yield str(path)
        return
    if spool_dir is None:
        from leadflow.settings import get_settings

        spool_dir = get_settings().data_dir / "spool"
    spool_dir.mkdir(parents=True, exist_ok=True)
    # one folder per run: two runs of the same file at once never remove each other's link
    folder = Path(tempfile.mkdtemp(prefix=f"{_digest(source)[:32]}-", dir=spool_dir))
    target = folder / display_name(source)
    try:
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        yield str(target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
