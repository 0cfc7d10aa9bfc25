# fdgen: `make run` (install + a small end-to-end job) and `make test` are all a new user needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-slow bench bench-1k lint clean transfer

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,dask,parquet]'
	$(BIN)/pip install --quiet torch==2.13.0  # the [torch] extra, pinned to the local CPU wheel
	$(BIN)/python -m fdgen.warmup  # compile the FractalDB kernels once, not in every worker
	touch $(STAMP)

install: $(STAMP)

# Small default job: search 50 categories, render 50 x 100 images into out/, write a preview.
# The warm-up line reports the kernels' load time from numba's cache; `make install` printed
# their compile time (the same line: cold vs warm).
run: $(STAMP)
	$(BIN)/python -m fdgen.warmup
	$(BIN)/fdgen search --categories 50 --out out/db
	$(BIN)/fdgen render --db out/db --instances 100 --shards out/shards --samples-per-shard 1000
	$(BIN)/fdgen preview --db out/db --out out/preview.png
	$(BIN)/fdgen info out/shards

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Speed, scaling, memory and compile time (medians over repeats); see README "Performance".
bench: $(STAMP)
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/contours.py --categories 20 --instances 5 --repeats 3
	$(BIN)/python bench/fractal3d.py
	$(BIN)/python bench/png.py
	$(BIN)/python bench/svd.py
	$(BIN)/python bench/scale.py

# FractalDB-1k end to end: search + 1,000 x 1,000 images on all cores (about 13 min on 2 cores,
# of which the standard figures take 4).
bench-1k: $(STAMP)
	$(BIN)/python bench/bench.py --slice 1

# Transfer experiment (docs/training.md): pre-train on 100 FractalDB-1k categories, fine-tune on
# Fashion-MNIST (Debian's dataset-fashion-mnist, installed if missing). About 8 min on 2 cores.
FASHION  := /usr/share/datasets/fashion-mnist
TRANSFER := out/transfer
transfer: $(STAMP)
	@test -f $(FASHION)/t10k-labels-idx1-ubyte.gz || apt-get install -y dataset-fashion-mnist \
		|| sudo apt-get install -y dataset-fashion-mnist
	$(BIN)/fdgen search --preset FractalDB-1k --categories 100 --workers 2 --out $(TRANSFER)/db \
		$(if $(wildcard $(TRANSFER)/db/search-progress.json),--resume)
	$(BIN)/fdgen render --db $(TRANSFER)/db --instances 200 --size 64 --samples-per-shard 2000 \
		--workers 2 --shards $(TRANSFER)/shards
	$(BIN)/python examples/transfer/transfer.py --shards $(TRANSFER)/shards --out $(TRANSFER)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

clean:
	rm -rf out .bench .pytest_cache
