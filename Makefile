# Two commands a newcomer needs: `make demo` and `make test`. Both create/update .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
CORES  ?= 2
# Test processes (pytest-xdist): the integration tests mostly wait on servers and subprocesses, so
# two workers halve the suite's wall time on 2 cores; a test file stays on one worker (its
# module fixtures are built once). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
# CPU torch is pinned in constraints.txt: an unpinned torch pulls a multi-GB CUDA build.
INSTALL_INPUTS := pyproject.toml wrapper/pyproject.toml constraints.txt
# Debian packages (Tesseract, Chromium, texlive): one list, src/vlmhyperbench/debian_packages.txt;
# installed when missing (root: apt-get; else passwordless sudo; else it stops with the command).
DEBIAN := PYTHON="$(PYTHON)" tools/install-debian-packages

# vLLM and SGLang, each in its own venv with only what its argument parser imports (not the
# engines' CUDA dependencies): `make check-engine-flags` parses the wrapper's engine command lines
# with them (tools/check_engine_flags.py says what is installed and why). Not part of `make test`.
ENGINE_VENVS := .engine-venvs
ENGINE_NO_DEPS_vllm := vllm==0.33.0 xgrammar==0.2.8
ENGINE_NO_DEPS_sglang := sglang==0.5.23

.PHONY: demo test lint format dryrun clean-results help check-engine-flags

help:
	@echo "make demo   - set up .venv and run the demo benchmark (results/summary.csv, results/report/leaderboard.md)"
	@echo "make test   - set up .venv with test extras and run the test suite"
	@echo "make check-engine-flags - parse the wrapper's vLLM/SGLang command lines with the real engines' parsers"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: $(BIN)/python $(INSTALL_INPUTS)
	$(PIP) install --quiet -c constraints.txt -e ".[hf,jit]" -e "./wrapper[hf]"
	touch $@

$(VENV)/.test-installed: $(VENV)/.demo-installed
	$(PIP) install --quiet -c constraints.txt -e ".[hf,jit,s3,k8s,test]" -e "./wrapper[hf]"
	touch $@

demo:
	@$(DEBIAN) demo
	@$(MAKE) --no-print-directory $(VENV)/.demo-installed
	$(BIN)/snakemake --cores $(CORES)
	@echo "Results: results/summary.csv and results/report/leaderboard.md"

test:
	@$(DEBIAN) test
	@$(MAKE) --no-print-directory $(VENV)/.test-installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint:
	@$(DEBIAN) lint
	@$(MAKE) --no-print-directory $(VENV)/.test-installed
	$(BIN)/ruff check src wrapper/src scripts tests benchmarks
	$(BIN)/ruff format --check src wrapper/src scripts tests benchmarks
	$(BIN)/snakefmt --check workflow rules
	$(BIN)/snakemake --lint

format: $(VENV)/.test-installed
	$(BIN)/ruff format src wrapper/src scripts tests benchmarks
	$(BIN)/ruff check --fix src wrapper/src scripts tests benchmarks
	$(BIN)/snakefmt workflow rules

dryrun: $(VENV)/.demo-installed
	$(BIN)/snakemake -n --cores $(CORES)

$(ENGINE_VENVS)/%/.installed: tools/engine-flags-%.txt constraints.txt
	rm -rf $(ENGINE_VENVS)/$*
	$(PYTHON) -m venv $(ENGINE_VENVS)/$*
	$(ENGINE_VENVS)/$*/bin/python -m pip install --quiet --upgrade pip
	$(ENGINE_VENVS)/$*/bin/python -m pip install --quiet --no-deps $(ENGINE_NO_DEPS_$*)
	$(ENGINE_VENVS)/$*/bin/python -m pip install --quiet -c constraints.txt -r tools/engine-flags-$*.txt
	touch $@

check-engine-flags: $(VENV)/.demo-installed $(ENGINE_VENVS)/vllm/.installed $(ENGINE_VENVS)/sglang/.installed
	$(BIN)/python tools/check_engine_flags.py

clean-results:
	rm -rf results logs .snakemake/metadata
