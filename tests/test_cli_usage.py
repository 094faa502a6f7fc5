"""A newcomer's first hour with the command line: a mistake is one line naming the value (exit 2),
commands run from any folder, logs are ours, and every command the README shows parses."""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unisurg.cli import build_parser, main
from unisurg.config import load_params

ROOT = Path(__file__).resolve().parents[1]
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) (\S+): (.*)$")


def _errors(err: str) -> list[str]:
    """The messages of the ERROR lines of a command's stderr."""
    return [m.group(3) for ln in err.splitlines() if (m := LOG_LINE.match(ln)) and m.group(1) == "ERROR"]


def _known_benchmarks() -> str:
    from unisurg.benchmarks import list_benchmarks

    return ", ".join(b.name for b in list_benchmarks())


def _archs() -> str:
    from unisurg.models import list_models

    return ", ".join(list_models())


def _mistakes(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """case -> (argv, the exact error message); the inputs are written by :func:`_inputs`."""
    video, text, reg = tmp / "case01.mp4", tmp / "vitl.pt", tmp / "sources.yaml"
    feats = ["features", "extract", str(video), "--out", str(tmp / "f.parquet"), "--encoder"]
    return {
        "unknown benchmark": (
            ["benchmarks", "validate", "cholec81", "--root", str(tmp)],
            f"unknown benchmark 'cholec81'; known: {_known_benchmarks()}",
        ),
        "unknown benchmark in sources.yaml": (
            ["curate", "--sources", str(reg), "--out", str(tmp / "idx")],
            f"invalid source registry {reg}: sources[a].role: role 'benchmark:cholec81': "
            f"unknown benchmark 'cholec81'; known: {_known_benchmarks()}",
        ),
        "vjepa spec without its architecture": (
            [*feats, "vjepa:/ckpt/vitl.pt"],
            "encoder spec 'vjepa:/ckpt/vitl.pt': expected vjepa:<arch>:<path>[:<key>] with <arch> one of "
            f"{_archs()} (e.g. vjepa:vit_large:/ckpt/vitl.pt)",
        ),
        "unknown architecture": ([*feats, "random:vit_foo"], f"unknown architecture 'vit_foo'; registered: {_archs()}"),
        "tokens into a parquet file": (
            [*feats, "random:vit_pico", "--pool", "none"],
            f"--pool none keeps every token: --out must be a folder of .npy files, not {tmp / 'f.parquet'}",
        ),
        "a text file as a checkpoint": (
            [*feats, str(text)],
            f"{text}: not a PyTorch checkpoint (it starts with b'not ', not a torch.save header)",
        ),
        "validate without a root": (
            ["benchmarks", "validate", "cholec80"],
            "benchmarks validate cholec80 needs --root DIR, the dataset's folder",
        ),
        "an unreachable Ray cluster": (
            [*feats, "random:vit_pico", "--engine", "ray", "--address", "127.0.0.1:1"],
            "cannot reach a Ray cluster at '127.0.0.1:1' (Connection refused); start one (`ray start --head`) or "
            "give its head's HOST:PORT with --address",
        ),
        "an export of a frame-wise timm backbone": (
            ["export", "timm:resnet18", "--format", "transformers", "--out", str(tmp / "e")],
            "timm:resnet18: a timm image backbone applied frame by frame (ResNet) is not a V-JEPA video ViT (tubelet "
            "patch embedding, 3D-RoPE blocks, final norm): the transformers, safetensors and vjepa layouts hold "
            "unisurg's VisionTransformer only; save a timm model with timm itself",
        ),
        "a missing video": (
            ["features", "extract", str(tmp / "nope.mp4"), "--encoder", "random:vit_pico", "--out", "x.parquet"],
            f"no video or directory {tmp / 'nope.mp4'}",
        ),
    }


def _inputs(tmp: Path) -> None:
    (tmp / "case01.mp4").write_bytes(b"\0" * 64)  # any file: each mistake is caught before a frame is decoded
    (tmp / "vitl.pt").write_text("not a checkpoint\n")
    (tmp / "sources.yaml").write_text(
        f"sources:\n  - {{name: a, root: {tmp}, region: abdomen, procedure: chole, license: x, "
        'role: "benchmark:cholec81"}\n'
    )


CASES = sorted(_mistakes(Path("/nonexistent")))


@pytest.mark.parametrize("case", CASES)
def test_a_mistake_is_one_line_and_exit_code_2(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the commands run on the defaults
    _inputs(tmp_path)
    argv, message = _mistakes(tmp_path)[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert _errors(err) == [message]
    assert "Traceback" not in err


def test_the_curation_flow_from_another_folder_names_the_missing_registry(tmp_path):
    """`python flows/curation.py` run elsewhere: the same one-line error as `unisurg curate`, exit 2."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "flows" / "curation.py"), "--sources", "my.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert _errors(out.stderr) == ["my.yaml: file not found"] and "Traceback" not in out.stderr


def test_benchmarks_list_reads_right(capsys):
    assert main(["benchmarks", "list"]) == 0
    rows = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()[1:]}
    assert len(rows) == 17
    assert rows["jigsaws"].split()[3] == "-" and rows["c3vd"].split()[3] == "-"  # regression: no classes, not 0
    assert "abs_rel ↓" in rows["scared"] and "accuracy ↑" in rows["cholec80"]
    assert "frames frames" not in "".join(rows.values())


def test_verbose_shows_the_traceback(tmp_path, capsys):
    assert main(["-v", "benchmarks", "validate", "cholec81", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "unknown benchmark 'cholec81'" in err
    assert main(["benchmarks", "validate", "cholec81", "--root", str(tmp_path), "-v"]) == 2  # after the command too
    assert "Traceback" in capsys.readouterr().err


def test_a_closed_pipe_is_not_an_error():
    """`unisurg benchmarks list --json | head -1`: the reader leaves early; no BrokenPipeError."""
    cmd = f"{shlex.quote(sys.executable)} -m unisurg benchmarks list --json | head -1"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout == "[\n" and out.stderr == "" and out.returncode == 0


def test_params_paths_are_relative_to_the_params_file(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "params.yaml").write_text(
        "curate: {sources: my_sources.yaml}\n"
        "pretrain: {init: 'vjepa:vit_pico:w/vjepa.pt:encoder'}\n"
        "evaluate:\n"
        "  benchmarks: {cholec80: ../data/cholec80, kvasirseg: /abs/kvasir}\n"
        "  models: {a: w/enc.pt, b: 'random:vit_pico', c: 'timm:resnet18:w/r.pth', d: 'timm:resnet18', f: 'hf:w/hf'}\n"
        "  cache_dir: cache\n"
    )
    monkeypatch.chdir(tmp_path)
    p = load_params("conf/params.yaml", ["evaluate.models.e=x.pt"])
    assert p.curate.sources == "conf/my_sources.yaml"
    assert p.pretrain.init == "vjepa:vit_pico:conf/w/vjepa.pt:encoder"
    assert p.evaluate.benchmarks == {"cholec80": "conf/../data/cholec80", "kvasirseg": "/abs/kvasir"}
    assert p.evaluate.models == {
        "a": "conf/w/enc.pt",
        "b": "random:vit_pico",
        "c": "timm:resnet18:conf/w/r.pth",
        "d": "timm:resnet18",
        "f": "hf:conf/w/hf",
        "e": "x.pt",  # a --set value is written on the command line: relative to the working directory
    }
    assert p.evaluate.cache_dir == "conf/cache"
    # from the file's own folder nothing moves (the DVC stages' case: their recorded params stay as written)
    monkeypatch.chdir(conf)
    assert load_params("params.yaml").evaluate.models["a"] == "w/enc.pt"
    # defaults are not written in the file: they stay relative to the working directory
    monkeypatch.chdir(tmp_path)
    (conf / "empty.yaml").write_text("")
    assert load_params(conf / "empty.yaml").evaluate.models["unisurg"] == "data/pretrain/encoder.pt"
    # no params.yaml here and none named: the built-in defaults
    assert load_params(None) == load_params(conf / "empty.yaml")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # a user's shell hides libraries' ones too
def test_curate_from_another_folder_logs_only_our_lines(corpus, tmp_path, capsys, monkeypatch):
    """`unisurg curate --sources my.yaml --out x` in a folder without params.yaml: the registry's
    roots are relative to it, the parameters are the defaults, and the log is ours alone (Great
    Expectations' hundreds of INFO lines stay out); -qq leaves nothing."""
    videos = tmp_path / "hospital" / "videos"
    videos.mkdir(parents=True)
    for src in sorted((corpus / "pretrain").rglob("*.mp4"))[:3]:
        shutil.copy(src, videos / src.name)
    (tmp_path / "hospital" / "my.yaml").write_text(
        "sources:\n  - {name: a, root: videos, region: abdomen, procedure: chole, license: x}\n"
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["curate", "--sources", "../hospital/my.yaml", "--out", "idx"]) == 0
    assert (work / "idx" / "clips.parquet").exists()
    lines = capsys.readouterr().err.splitlines()
    parsed = [LOG_LINE.match(ln) for ln in lines]
    assert all(parsed), [ln for ln, m in zip(lines, parsed) if not m]  # no stray output like "[]"
    assert {m.group(2).split(".")[0] for m in parsed} == {"unisurg"}, lines
    assert any("3 videos kept" in m.group(3) for m in parsed) and len(lines) <= 6, lines
    assert main(["curate", "--sources", "../hospital/my.yaml", "--out", "idx2", "-qq"]) == 0
    assert capsys.readouterr().err == ""  # -qq: warnings and errors only (-q hides progress bars only)


def _actions(parser: argparse.ArgumentParser, path: str = "unisurg"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


def test_every_option_explains_itself():
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in _actions(build_parser()) if not a.help]
    assert not missing
    text = build_parser().format_help()
    assert "``" not in text and ":mod:" not in text  # plain text, not reStructuredText
    curate_help = build_parser()._subparsers._group_actions[0].choices["curate"].format_help()
    assert "--set curate." in curate_help and "pretrain." not in curate_help  # the example fits the command


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"unisurg {version('unisurg')}"


# --------------------------------------------------------------------------- the README's commands


def readme_commands(text: str) -> list[str]:
    """Every `unisurg` command line of the README's shell blocks: continuations joined, comments
    dropped, run as `unisurg`, `.venv/bin/unisurg`, `python -m unisurg`, `torchrun ... -m unisurg`
    or `stages/NAME.py` (= `unisurg NAME`)."""
    found, block, lang = [], None, ""
    for line in text.splitlines():
        if line.startswith("```"):  # fences pair in order: an opening one names the language
            if block is None:
                block, lang = [], line[3:].strip()
            else:
                if lang in ("", "bash", "sh", "shell", "console"):
                    found += _command_lines("\n".join(block))
                block = None
        elif block is not None:
            block.append(line)
    return found


def _command_lines(block: str) -> list[str]:
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip()
        m = re.search(r"(?:^|\s|/)(?:unisurg|stages/(\w+)\.py)\s(.*)$", line)
        if m and not line.startswith("#"):
            out.append(f"unisurg {m.group(1) + ' ' if m.group(1) else ''}{m.group(2)}".strip())
    return out


def readme_mentions(text: str) -> list[str]:
    """`unisurg ...` in inline code: commands named in the prose, maybe without their required values."""
    return re.findall(r"`(unisurg [^`]+)`", text)


README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_names_commands():
    assert (
        len(readme_commands(README)) >= 10 and len(readme_mentions(README)) >= 10
    )  # else the tests below pass vacuously


@pytest.mark.parametrize("command", readme_commands(README))
def test_every_readme_command_parses(command, capsys):
    try:
        build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit as stop:
        if stop.code == 0:  # --help, --version
            return
        pytest.fail(f"README: `{command}` does not parse: {capsys.readouterr().err.strip()} (exit {stop.code})")


@pytest.mark.parametrize("mention", readme_mentions(README))
def test_every_command_the_readme_mentions_exists_with_its_options(mention):
    """A mention names a command (and its action), and only options that command has."""
    words = [w for w in shlex.split(mention)[1:] if not w.isupper()]  # NAME, DIR, COMMAND: placeholders
    if not words or words[0].startswith("-"):
        return  # `unisurg --version`, `unisurg COMMAND -h`: top-level options, parsed above or by test_version
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    assert words and words[0] in sub, f"README mentions `{mention}`: no command {words[0]!r} (has {sorted(sub)})"
    cmd = sub[words[0]]
    options = {o for a in cmd._actions for o in a.option_strings}
    unknown = [w.split("=")[0] for w in words[1:] if w.startswith("-") and w.split("=")[0] not in options]
    assert not unknown, f"README mentions `{mention}`: {words[0]} has no {unknown}"
    action = next((a for a in cmd._actions if a.dest == "action"), None)
    if action is not None and len(words) > 1 and not words[1].startswith("-"):
        assert words[1] in action.choices, f"README mentions `{mention}`: {words[0]} {words[1]!r} is not an action"
