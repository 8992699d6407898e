"""Live widgets for the engine (ipywidgets; JupyterLab, Notebook 7 and Voila).

- `watch("mv")`: a materialized view as a live table, refreshed at each committed epoch.
- `monitor()`: current, committed and durable epoch, checkpoint charts, sources, sinks.
- `crash_lab()`: crash the engine under a delivery guarantee, recover, see the verdict;
  `crash_lab(compare=True)` runs the three guarantees side by side.
- `show_plan("mv")`: the streaming plan as an SVG picture with live counters.

Every widget takes `db=None`, meaning the kernel's engine (`rwmagic.engine()`).
Only standard ipywidgets with HTML and SVG are used: no front-end extension to install.
"""

from __future__ import annotations

from rwmagic.widgets._crashlab import CrashLab, CrashLabCompare, crash_lab, crash_lab_compare
from rwmagic.widgets._monitor import EpochMonitor, monitor
from rwmagic.widgets._plan import PlanView, show_plan
from rwmagic.widgets._table import LiveTable, watch

__all__ = ["CrashLab", "CrashLabCompare", "EpochMonitor", "LiveTable", "PlanView", "crash_lab",
           "crash_lab_compare", "monitor", "show_plan", "watch"]
