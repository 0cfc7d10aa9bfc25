# fdgen: `make run` (install + a small end-to-end job) and `make test` are all a new user needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-slow bench bench-contours lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,dask]'
	touch $(STAMP)

install: $(STAMP)

# Small default job: search 50 categories, render 50 x 100 images into out/, write a preview.
run: $(STAMP)
	$(BIN)/fdgen search --categories 50 --out out/db
	$(BIN)/fdgen render --db out/db --instances 100 --shards out/shards --samples-per-shard 1000
	$(BIN)/fdgen preview --db out/db --out out/preview.png
	$(BIN)/fdgen info out/shards

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/bench.py

# RCDB, VisualAtom, SegRCDB at 512 px: images/s per core (render, and render + PNG).
bench-contours: $(STAMP)
	$(BIN)/python bench/contours.py --categories 20 --instances 5 --repeats 3

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

clean:
	rm -rf out .bench .pytest_cache
