"""The UniSurg-17 benchmark registry: one declaration per benchmark, with its real-format loader.

- :mod:`.benchmark`: the :class:`Benchmark` declaration (family, classes, metric, split, ...);
- :mod:`.families`: task families and their facts (``Phase``, ``Triplets``, ``Depth``, ...);
- :mod:`.records`: what loaders return (records, pixel sources, split rules);
- :mod:`.problems`, :mod:`.parsing`: problem reporting and the shared parsers;
- :mod:`.ondisk`: the expected on-disk layout each benchmark declares;
- :mod:`.deep`: ``validate(deep=True)``, which opens every video, image and dense target;
- :mod:`.phase`, :mod:`.clips`, :mod:`.triplets`, :mod:`.dense`: the loaders and declarations;
- :mod:`.registry`: benchmarks by name.
"""

from .benchmark import Benchmark
from .problems import AnnotationError
from .records import FramesSource, ImageSource, Record, VideoSource
from .registry import Registry, get_benchmark, list_benchmarks, suite, using

__all__ = [
    "AnnotationError",
    "Benchmark",
    "FramesSource",
    "ImageSource",
    "Record",
    "Registry",
    "VideoSource",
    "get_benchmark",
    "list_benchmarks",
    "suite",
    "using",
]
