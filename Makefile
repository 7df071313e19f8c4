# The README's first two commands: `make demo` and `make test`. Both set up .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench-speed clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: pip finds the local CPU wheel for exactly this version.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,serve,export,dask,spark,bench,faces]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/anomalia demo --out demo-output

# pytest exits 5 when it collected no test: treat that as a failure, loudly.
test: $(STAMP)
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) demo-output .pytest_cache
