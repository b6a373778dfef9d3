"""The standard library's ``tarfile``, with extraction filters on every Python 3.11.

Extraction filters (``filter="data"``, PEP 706) came with Python 3.12 and 3.11.4; Debian 12's
Python is 3.11.2, where the backport of the 3.12 module (``backports.tarfile``, a dependency
there only) stands in. Code that extracts archives imports ``tarfile`` from here, so that the
archive, its members and its errors all come from the same module.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

__all__ = ["tarfile"]

if TYPE_CHECKING:
    import tarfile
else:
    _FILTERS = sys.version_info >= (3, 11, 4)
    tarfile = importlib.import_module("tarfile" if _FILTERS else "backports.tarfile")
