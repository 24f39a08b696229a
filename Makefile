# The two commands of the README:  make book  |  make test
PY ?= python3
export PYTHON := $(PY)

.PHONY: install book nbval-refresh lint test bench clean

.stamp-install: pyproject.toml scripts/install.sh requirements-lock.txt
	bash scripts/install.sh
	touch $@

install: .stamp-install

PROFILE ?= cpu
DEVICE ?= auto

## book: run every notebook with papermill at $(PROFILE), then build the HTML book into _build/html
book: .stamp-install
	$(PY) scripts/build_book.py --profile $(PROFILE) --device $(DEVICE)

## nbval-refresh: re-execute the smoke copies that nbval checks (after changing a notebook)
nbval-refresh: .stamp-install
	$(PY) scripts/build_book.py --profile smoke --out tests/notebooks --no-book

## lint: ruff, with the configuration in pyproject.toml (line length 120)
lint: .stamp-install
	$(PY) -m ruff check .

## test: lint, then every test; pytest's "no tests collected" (exit 5) counts as a failure
test: lint
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: .stamp-install
	$(PY) benchmarks/run.py

clean:
	rm -rf _build .stamp-install
