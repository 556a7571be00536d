"""The one progress bar every htaf command and Python call shows.

``tqdm.auto`` gives tqdm's notebook widget inside Jupyter when ``ipywidgets`` is installed (else
a text bar with tqdm's hint to install it) and a terminal bar on stderr everywhere else, so a
grid of runs (``htaf.compare``) and the epochs of one run (``htaf.train_one``) look alike in
both places.
"""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(**kwargs: Any) -> Any:
    """A ``tqdm.auto.tqdm`` bar; ``kwargs`` as tqdm's (``total``, ``desc``, ``disable``...)."""
    from tqdm.auto import tqdm

    # On a terminal the bar goes to stderr so that stdout stays the command's output; the
    # notebook bar ignores this (tqdm.notebook moves stderr to the cell's output itself).
    kwargs.setdefault("file", sys.stderr)
    return tqdm(**kwargs)
