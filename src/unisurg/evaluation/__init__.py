"""Frozen-encoder evaluation: one harness for every benchmark and every encoder.

:mod:`.encoders` resolves an encoder spec (checkpoint, ``random:``, ``vjepa:``, ``timm:``),
:mod:`.samples` turns benchmark records into probe samples and decodes their clips,
:mod:`.features` extracts (and caches) frozen encoder tokens, :mod:`.heads` defines the
attentive / dense heads trained as a grid, :mod:`.tasks` says how each task family is trained and
scored (with the official metrics of :mod:`.metrics`), :mod:`.bank` trains the grid as one
vectorised bank, and :mod:`.harness` runs a benchmark end to end. :mod:`.extract` is ``unisurg
features extract``: sliding-window embeddings of any video folder. :func:`load_vjepa_probe` loads a
probe trained by vjepa2 or SurgMotion.
"""

from .heads import AttentiveProbe, load_vjepa_probe

__all__ = ["AttentiveProbe", "load_vjepa_probe"]
