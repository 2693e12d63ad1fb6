# planlab: `make demo` runs the main job on the embedded synthetic world; `make test` runs the tests.
# The virtual environment is created from the lock (constraints.txt) on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.planlab-installed
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONHASHSEED := 0

.PHONY: setup demo test test-fast bench lint lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -r requirements-ci.txt
	@touch $(STAMP)

demo: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash scripts/demo.sh demo_out

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not slurm and not browser"

bench: $(STAMP)
	$(PY) -m benchmarks.run

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

lock: $(STAMP)
	@{ head -5 constraints.txt | grep '^#'; echo "torchvision==0.0.0"; echo "torchaudio==0.0.0"; \
	   PIP_CONSTRAINT= $(PIP) freeze --exclude-editable | grep -v '^pip='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf demo_out .pytest_cache
