"""unisurg: reference pipeline for the UniSurg / SurgMotion surgical video foundation model.

The package is a library: importing it has no side effects. Entry points live in
``unisurg.cli`` (the ``unisurg`` console script), ``stages/`` (DVC) and ``flows/`` (Prefect).
"""

__version__ = "0.1.0"
