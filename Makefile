# The README's first commands: `make demo`, `make test` and `make docs`. Each sets up .venv on a
# fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test docs lint bench-speed clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: pip finds the local CPU wheel for exactly this version.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,serve,export,dask,spark,bench,faces,docs,audio,text]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/anomalia demo --out demo-output

# pytest exits 5 when it collected no test: treat that as a failure, loudly.
test: $(STAMP)
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

# The site (API reference, CLI reference, the README as the guide) in site/; --strict: any
# warning (a broken cross-reference or link, a bad docstring) fails. mkdocs-material's
# banner about MkDocs 2.0 is no warning: silenced.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks docs
	$(VENV)/bin/ruff format --check src tests benchmarks docs

clean:
	rm -rf $(VENV) demo-output site .pytest_cache
