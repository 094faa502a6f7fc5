"""Frozen-encoder evaluation: one harness for every benchmark and every encoder.

:mod:`.samples` turns benchmark records into probe samples and decodes their clips,
:mod:`.features` extracts (and caches) frozen encoder tokens, :mod:`.heads` defines the
attentive / dense heads trained as a grid, :mod:`.tasks` says how each task family is trained and
scored, and :mod:`.harness` runs a benchmark end to end.
"""
