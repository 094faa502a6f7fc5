"""The HTML report opens offline in a real browser (headless Chromium) with every benchmark, every
model and its embedded plots rendered."""

from __future__ import annotations

import shutil
import subprocess

import cv2
import numpy as np
import pytest

from unisurg.io import write_json
from unisurg.report import Extras, build_report


def _chromium() -> str:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("no headless Chromium found: `make test` installs chromium-headless-shell (Debian package)")


def _offline(cmd: list[str]) -> list[str]:
    """Run without any network: a network namespace where allowed, else no name resolution at all."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        return ["unshare", "-n", *cmd]
    return [*cmd, "--host-resolver-rules=MAP * ~NOTFOUND"]


def test_report_renders_offline_in_headless_chromium(tmp_path):
    from unisurg.benchmarks import list_benchmarks

    models = {"random_init": 0.2, "student": 0.3, "unisurg": 0.4}
    for b in list_benchmarks():
        write_json(
            tmp_path / "metrics" / f"{b.name}.json",
            {
                "benchmark": b.title,
                "name": b.name,
                "task": b.task,
                "metric": b.metric,
                "higher_is_better": b.higher_is_better,
                "models": {
                    m: {"value": v, "ci": [v - 0.05, v + 0.05], "metrics": {b.metric: v}} for m, v in models.items()
                },
            },
        )
    build_report(tmp_path / "metrics", tmp_path / "out", {}, Extras(), "Report")
    page = (tmp_path / "out" / "index.html").as_uri()
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]

    dom = subprocess.run(_offline([*base, "--dump-dom", page]), capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for b in list_benchmarks():
        assert f"<td>{b.title}</td>" in dom.stdout, b.title
    for m in models:
        assert f"<th>{m}</th>" in dom.stdout
    assert dom.stdout.count("<img") >= 1

    shot = tmp_path / "report.png"
    proc = subprocess.run(
        _offline([*base, "--window-size=1100,1600", f"--screenshot={shot}", page]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    img = cv2.imread(str(shot))[..., ::-1]  # RGB
    assert img.shape[:2] == (1600, 1100)
    # the embedded plot was decoded and drawn: matplotlib's first bar colour (#1f77b4) is on screen
    blue = np.all(np.abs(img.astype(int) - (31, 119, 180)) < 12, axis=-1)
    assert blue.sum() > 500
