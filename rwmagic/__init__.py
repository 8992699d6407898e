"""IPython extension for kernel_engine: the ``%%stream_sql`` magic, display and widgets.

Load it in a notebook with ``%load_ext rwmagic``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["load_ipython_extension"]


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register the rwmagic magics with ``ipython`` (called by ``%load_ext rwmagic``)."""
    raise NotImplementedError("the %%stream_sql magic arrives in a later issue")
