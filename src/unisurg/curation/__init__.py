"""Curation: multi-source video -> a versioned Parquet/DuckDB index behind a data-quality gate.

:mod:`.sources` reads the source registry (``sources.yaml``), :mod:`.inspection` inspects one file
(facts, perceptual signature, motion profile; failures become quarantine reasons), :mod:`.index`
deduplicates, guards against benchmark leakage, cuts clips and writes the index, and :mod:`.gate`
runs the Great Expectations suites on it.
"""
