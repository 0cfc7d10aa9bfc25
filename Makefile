# fdgen: `make run` (install + a small end-to-end job) and `make test` are all a new user needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-slow test-clients bench bench-1k lint clean transfer transfer-compare

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

# timm on fdgen shards (tests/test_clients.py, docs/training.md) in a venv of its own:
# torchvision does not import beside the main venv's torch 2.13.0. fdgen is installed there
# from this checkout (not editable) on every run. timm's train.py is not in timm's wheel or
# sdist: TIMM_TRAIN_PY=PATH (the train.py of the timm version that pyproject's [clients] extra
# pins) runs it too, else that test says it skipped it.
CLIENTS       ?= .venv-clients
CLIENTS_STAMP := $(CLIENTS)/.installed

$(CLIENTS_STAMP):
	$(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/pip install --quiet --upgrade pip
	$(CLIENTS)/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1  # from the local disk
	touch $@

test-clients: $(CLIENTS_STAMP)
	$(CLIENTS)/bin/pip install --quiet '.[clients]'
	$(CLIENTS)/bin/python -m pytest -q -m clients -p no:cacheprovider tests/test_clients.py

# Speed, scaling, memory and compile time (medians over repeats); see README "Performance".
bench: $(STAMP)
	$(BIN)/python bench/bench.py --slice 0.1  # + a tenth of FractalDB-1k on all cores (~30 s)
	$(BIN)/python bench/contours.py --categories 20 --instances 5 --repeats 3
	$(BIN)/python bench/fractal3d.py
	$(BIN)/python bench/pcscenes.py
	$(BIN)/python bench/png.py
	$(BIN)/python bench/svd.py
	$(BIN)/python bench/videoperlin.py
	$(BIN)/python bench/scale.py

# FractalDB-1k end to end: search + 1,000 x 1,000 images on all cores (about 8 min on 2 cores,
# of which the standard figures take 3).
bench-1k: $(STAMP)
	$(BIN)/python bench/bench.py --slice 1

# Transfer experiment (docs/training.md): pre-train on 100 categories x 200 images of one
# family's preset (64 px, read back at 32 px grey), fine-tune on Fashion-MNIST (Debian's
# dataset-fashion-mnist, installed if missing). About 8 min on 2 cores for FractalDB.
#   make transfer                                  # FractalDB-1k
#   make transfer PRESET=SVDFractal-1k             # any single-label preset (`fdgen presets`)
#   make transfer-compare                          # the families of docs/training.md, one table
# Per-image families (SVDFractal-Multi-1k, SegRCDB) carry no single class: not applicable.
FASHION  := /usr/share/datasets/fashion-mnist
PRESET   ?= FractalDB-1k
TRANSFER_ROOT := out/transfer
TRANSFER := $(TRANSFER_ROOT)/$(PRESET)
TRANSFER_ARGS ?=
TRANSFER_FAMILIES ?= FractalDB-1k SVDFractal-1k 1p-frac RCDB-1k VisualAtom-1k
PER_IMAGE_PRESETS := SVDFractal-Multi-1k SegRCDB
transfer: $(STAMP)
	@if echo " $(PER_IMAGE_PRESETS) " | grep -q " $(PRESET) "; then \
		echo "make transfer: PRESET=$(PRESET) has per-image samples with no single class label;" \
			"choose a single-label preset (fdgen presets)" >&2; exit 2; fi
	@test -f $(FASHION)/t10k-labels-idx1-ubyte.gz || apt-get install -y dataset-fashion-mnist \
		|| sudo apt-get install -y dataset-fashion-mnist
	$(BIN)/fdgen search --preset $(PRESET) --categories 100 --workers 2 --out $(TRANSFER)/db \
		$(if $(wildcard $(TRANSFER)/db/search-progress.json),--resume)
	$(BIN)/fdgen render --db $(TRANSFER)/db --instances 200 --size 64 --samples-per-shard 2000 \
		--workers 2 --shards $(TRANSFER)/shards
	$(BIN)/python examples/transfer/transfer.py --shards $(TRANSFER)/shards --out $(TRANSFER) \
		--baseline $(TRANSFER_ROOT)/baseline.json $(TRANSFER_ARGS)

# One family after another (no shuffled-label control), then one table: compare.md.
transfer-compare: $(STAMP)
	@for preset in $(TRANSFER_FAMILIES); do \
		start=$$(date +%s); \
		$(MAKE) --no-print-directory transfer PRESET=$$preset \
			TRANSFER_ARGS="--no-control $(TRANSFER_ARGS)" || exit 1; \
		echo "$$preset $$(( $$(date +%s) - start ))" >> $(TRANSFER_ROOT)/wall-times.txt; \
	done
	$(BIN)/python examples/transfer/compare.py --root $(TRANSFER_ROOT) $(TRANSFER_FAMILIES)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

clean:
	rm -rf out .bench .pytest_cache
