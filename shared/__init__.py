"""The inventory pipeline: store SQLite dumps and POS sale events to the Azure lake and stock store.

Layers (each a sub-package): ``core`` is pure (no I/O, no Azure), ``services`` are the use cases,
``adapters`` wrap everything outside the process, ``triggers`` are the Azure Functions blueprints, and
``bootstrap`` is the one place that turns settings into adapters.
"""

__version__ = "0.1.0"
