# Two entry points a newcomer needs: `make repro` and `make test`.
# Both build .venv from the pinned requirements.lock the first time, then reuse it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: put the venv first on PATH so they run inside it.
RUN := PATH="$(BIN):$$PATH" DVC_NO_ANALYTICS=1 PREFECT_SERVER_ANALYTICS_ENABLED=false

.PHONY: venv browser ffmpeg repro ablation recipe seeds continued test test-fast test-gpu bench bench-gpu reliability-report clean-venv

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -q -r requirements.lock
	$(BIN)/python -m pip install -q -q --no-deps -e .
	touch $(STAMP)

repro: $(STAMP)
	$(RUN) dvc repro

# The ablation grid (ablation/dvc.yaml): pretrain + evaluate each variant beside the full recipe, and the
# random-teacher distillation control; version the results in reports/ablation/ and reports/random_teacher/,
# and regenerate the report with the ablation tables (~70 min on 2 cores).
ablation: $(STAMP)
	$(RUN) dvc repro ablation/dvc.yaml:evaluate ablation/dvc.yaml:random_teacher_evaluate
	$(RUN) unisurg ablation collect
	$(RUN) dvc repro

# Recipe candidates (ablation/params.yaml `recipe`): pretrain each, then tabulate their learning
# diagnostics on validation clips beside the main run's in reports/recipe.md (~10 min a candidate).
recipe: $(STAMP)
	$(RUN) dvc repro ablation/dvc.yaml:recipe
	$(RUN) unisurg ablation collect-recipe

# The pretraining-seed spread (ablation/dvc.yaml seed_* stages): the main recipe under base.seed 1 and 2,
# with its random baseline, on every benchmark; versioned in reports/seeds/ (~55 min on 2 cores).
seeds: $(STAMP)
	$(RUN) dvc repro ablation/dvc.yaml:seed_evaluate
	$(RUN) unisurg ablation collect-seeds
	$(RUN) dvc repro

# Continued pretraining on one region, without and with self-distillation (ablation/dvc.yaml continued_*
# stages, ablation/params.yaml `continued`), every benchmark; versioned in reports/continued/ (~25 min).
continued: $(STAMP)
	$(RUN) dvc repro ablation/dvc.yaml:continued_evaluate
	$(RUN) unisurg ablation collect-continued
	$(RUN) dvc repro

# The report test opens reports in headless Chromium: install Debian's chromium-headless-shell when
# no Chromium is on PATH (needs root + apt; otherwise install Chromium yourself).
browser:
	@command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || \
	  (command -v apt-get >/dev/null && apt-get update -qq && \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null) || \
	  (echo "no Chromium: install chromium-headless-shell (Debian) or chromium for the report test" >&2; exit 1)

# torchcodec (evaluate.decoder: torchcodec | auto) loads the system's FFmpeg shared libraries: install
# Debian's (FFmpeg 5.1) when none is found (needs root + apt; otherwise install FFmpeg 4-8 yourself).
ffmpeg:
	@ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so' || \
	  (command -v apt-get >/dev/null && (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	     libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavfilter8 libavdevice59 >/dev/null 2>&1 || \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	     libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavfilter8 libavdevice59 >/dev/null))) || \
	  (echo "no FFmpeg libraries: install FFmpeg 4-8's shared libraries for torchcodec (evaluate.decoder)" >&2; exit 1)

test: $(STAMP) browser ffmpeg
	$(RUN) python -m pytest

# Everything except the end-to-end cases (a quick loop while developing).
test-fast: $(STAMP) ffmpeg
	$(RUN) python -m pytest -m "not slow"

# The tests that need CUDA (each stage's device path on tiny models); elsewhere they report as skipped.
test-gpu: $(STAMP)
	$(RUN) python -m pytest -m gpu -rs

# Speed/memory benchmarks -> reports/perf.md (targets live here, never in unit tests).
bench: $(STAMP) ffmpeg
	$(RUN) python perf/bench_decode.py --out reports/perf_decode.json
	$(RUN) python perf/bench_index.py --clips 15000000 --out reports/perf_index.json
	$(RUN) python perf/bench_train.py --out reports/perf_train.json
	$(RUN) python perf/bench_eval.py --out reports/perf_eval.json
	$(RUN) python perf/bench_stream.py --out reports/perf_stream.json
	$(RUN) python perf/bench_scaling.py --out reports/perf_scaling.json
	$(RUN) OMP_NUM_THREADS=1 python perf/bench_hour.py --out reports/perf_hour.json
	$(RUN) python perf/bench_leakage.py --out reports/perf_leakage.json
	$(RUN) python perf/bench_ray.py --out reports/perf_ray.json
	$(RUN) python perf/protocol_cost.py --out reports/perf_protocol.json
	$(RUN) python perf/perf_report.py

# On a GPU machine (<= 8 min on one H200): ViT-L pretraining step time and MFU, ViT-g under FSDP, frozen
# extraction under the paper's protocol, student vs teacher -> reports/perf_gpu.json + perf.md's GPU section.
bench-gpu: $(STAMP)
	$(RUN) python perf/bench_gpu.py --out reports/perf_gpu.json
	$(RUN) python perf/perf_report.py

# Run the reliability suite and write what happened to every bad input / fault to reports/reliability.md.
reliability-report: $(STAMP)
	$(RUN) UNISURG_RELIABILITY_REPORT=reports/reliability.md python -m pytest -q tests/reliability tests/test_curate.py

clean-venv:
	rm -rf $(VENV)
