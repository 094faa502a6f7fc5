"""The UniSurg-17 benchmark registry: real-format loaders, splits, tasks and metrics."""

from .base import AnnotationError, Benchmark, Record, get_benchmark, list_benchmarks

__all__ = ["AnnotationError", "Benchmark", "Record", "get_benchmark", "list_benchmarks"]
