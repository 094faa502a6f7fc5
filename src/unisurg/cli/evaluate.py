"""``unisurg evaluate``: probe frozen encoders on benchmarks (the DVC stage ``evaluate``, one per
benchmark)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import ConfigError, spec_file
from ..errors import UsageError
from ..io import write_json
from .common import Command, log, stage_params


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--benchmark",
        required=True,
        nargs="+",
        help="registered benchmark name(s) (unisurg benchmarks list); 'all': every one of evaluate.benchmarks",
    )
    sp.add_argument("--root", default=None, help="the dataset's folder (default: evaluate.benchmarks.<name>)")
    sp.add_argument(
        "--encoder",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="evaluate this encoder instead of evaluate.models (repeatable); SPEC is a checkpoint path, "
        "random:<arch>, vjepa:<arch>:<path>[:<key>], hf:<folder> or timm:<name>[:<path>]",
    )
    sp.add_argument(
        "--out",
        default="data/evaluate",
        help="folder for predictions.parquet (several benchmarks: one sub-folder each)",
    )
    sp.add_argument(
        "--metrics", default=None, help="results JSON of one benchmark (default: results.json beside its predictions)"
    )
    sp.add_argument("--metrics-dir", default=None, help="or: a folder of <benchmark>.json results (the pipeline's)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from ..benchmarks import get_benchmark
    from ..evaluation.encoders import MultiLayer, load_encoder_spec
    from ..evaluation.harness import run_benchmark
    from ..evaluation.protocols import from_params
    from ..runtime import distributed

    p = stage_params(args)
    e = p.evaluate
    models = _encoders(args.encoder) or e.models
    names = list(e.benchmarks) if args.benchmark == ["all"] else args.benchmark
    benches = [get_benchmark(name) for name in names]
    if args.root and len(benches) > 1:
        raise ConfigError("--root names one dataset: evaluate one benchmark with it, or set evaluate.benchmarks")
    if args.metrics and len(benches) > 1:
        raise ConfigError("--metrics names one file: use --metrics-dir for several benchmarks")
    roots = {}
    for bench in benches:
        roots[bench.name] = args.root or e.benchmarks.get(bench.name)
        if roots[bench.name] is None:
            raise ConfigError(f"no dataset root for {bench.name}: pass --root or set evaluate.benchmarks.{bench.name}")
    protocol = from_params(e)
    if protocol.select_on == "test":
        log.warning("evaluate.select_on=test: heads chosen on the TEST split (the paper's configs), not held out")
    size = protocol.sampling.size
    with distributed(e.device) as d:
        if d.device.type == "cuda":  # TF32 matrix products for the float32 parts (the heads' optimizer, metrics)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        encoders = {}
        for name, spec in models.items():
            model, wid = load_encoder_spec(spec, p.base.seed, size, vjepa_key=protocol.checkpoint_key)
            if e.layers:  # multi-level tokens: cached and recorded apart from the last block's
                model, wid = MultiLayer(model, e.layers), f"{wid}@layers{e.layers}"
            encoders[name] = (model.to(d.device), wid)
        batch = e.batch_size.on(d.device.type)
        for bench in benches:
            previous = _previous(bench, args, len(benches))
            ran = run_benchmark(
                bench,
                Path(roots[bench.name]),
                encoders,
                protocol,
                p.base.seed,
                Path(e.cache_dir),
                batch,
                d,
                e.bf16,
                e.workers,
                e.decoder,
                previous,
            )
            if ran is not None and ran[1] is not None:  # the main rank writes; the others did their share
                _write_results(bench, *ran, args, len(benches), compute_info(d, e.bf16))
    return 0


def _outputs(bench, args: argparse.Namespace, n_benchmarks: int) -> tuple[Path, Path]:
    """(the predictions folder, the results file) of one benchmark under the command's options."""
    out = Path(args.out) if n_benchmarks == 1 else Path(args.out) / bench.name
    if args.metrics:
        return out, Path(args.metrics)
    return out, Path(args.metrics_dir) / f"{bench.name}.json" if args.metrics_dir else out / "results.json"


def _previous(bench, args: argparse.Namespace, n_benchmarks: int) -> dict | None:
    """The results an earlier run wrote for this benchmark, if they and their predictions are there
    (a killed ``--benchmark all`` run resumes at the first benchmark it did not finish)."""
    from ..io import read_json

    out, metrics = _outputs(bench, args, n_benchmarks)
    if not metrics.exists() or not (out / "predictions.parquet").exists():
        return None
    try:
        return read_json(metrics)
    except (OSError, ValueError):
        return None


def _encoders(items: list[str]) -> dict[str, str]:
    """``--encoder NAME=SPEC`` (repeatable) -> {name: spec}; a bare SPEC is named after its file's stem."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep:
            file = spec_file(item)
            name, spec = (Path(file[1]).stem if file else item), item
        if not name or not spec or name in out:
            raise UsageError(
                f"--encoder {item!r}: expected NAME=SPEC with a new NAME, e.g. mine=data/pretrain/encoder.pt"
            )
        out[name] = spec
    return out


def compute_info(d, bf16: bool) -> dict:
    """How a command computed: device type, precision, processes (results record it beside the machine)."""
    cuda = d.device.type == "cuda"
    return {"device": d.device.type, "precision": "bf16-autocast" if cuda and bf16 else "float32", "ranks": d.world}


def _write_results(
    bench, result: dict, predictions, dense, args: argparse.Namespace, n_benchmarks: int, compute: dict
) -> None:
    import numpy as np

    from ..io import atomic_path, write_table

    # one benchmark: --out is its folder; several: one sub-folder each; the results beside the
    # predictions unless named: never into the pipeline's reports/metrics by accident
    out, metrics = _outputs(bench, args, n_benchmarks)
    write_table(out / "predictions.parquet", predictions)
    dense_file = out / "dense_outputs.npy"
    if dense is not None:  # the dense maps, one per prediction row, written model by model
        n, shape = sum(len(a) for a in dense), dense[0].shape[1:]
        with atomic_path(dense_file) as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, *shape))
            row = 0
            for a in dense:
                for i in range(0, len(a), 256):
                    arr[row + i : row + min(i + 256, len(a))] = a[i : i + 256]
                row += len(a)
            arr.flush()
            del arr
    else:
        dense_file.unlink(missing_ok=True)
    write_json(Path(metrics), {**result, "machine": machine_info(), "compute": compute})
    summary = {m: d["value"] for m, d in result["models"].items()}
    log.info("evaluate %s (%s): %s", bench.title, bench.metric, summary)


def machine_info() -> dict[str, str | int]:
    """What a result ran on: training and probes on other CPUs may differ in the last bits."""
    import platform

    import numpy as np
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass  # not Linux: platform's description stands
    acc = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no accelerator"
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "accelerator": acc,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


COMMAND = Command(
    "evaluate",
    "probe frozen encoders on benchmarks (evaluate.protocol)",
    add_arguments,
    cmd_evaluate,
    set_example="evaluate.protocol=surgmotion",
)
