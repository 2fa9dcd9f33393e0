# `make test` and `make demo` work on a fresh machine: they build their own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit venv clean fuzz browser

venv: $(STAMP)

# setup.py and the compiled sources too: the OVF reader's tree walk (_tree.c) and fast path (_fastread.pyx)
# are compiled by the install, so a change to them is built by the next `make test` or `make demo`.
$(STAMP): pyproject.toml setup.py src/ovfstore/ovf/_tree.c src/ovfstore/ovf/_fastread.pyx
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job, for a newcomer to watch: protect an inventory, lose the engine, recover it from the
# storage domains alone, and check that everything came back.
demo: $(STAMP)
	$(BIN)/ovfstore demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# The whole suite: lint, strict types, then every test (SQLite and PostgreSQL; with CI=true a missing
# PostgreSQL, or a missing chromium and chromium-driver for the status page's browser tests, is a failure,
# not a skip). `make browser` installs those two from Debian (as root), as .ci/run does.
test: lint typecheck
	$(BIN)/pytest --cov --cov-report=term tests

# Coverage-guided fuzzing of every parser of untrusted bytes, FUZZ_SECONDS each (default 10 minutes). The
# corpus under .fuzz/ grows from run to run; an input that breaks a parser's contract stops the run and is
# saved as .fuzz/crash-*.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := store_tar store_tar_chunked domain_metadata volume_meta store_description ovf_document store_manifest
fuzz: $(STAMP)
	mkdir -p .fuzz
	for t in $(FUZZ_TARGETS); do \
		$(BIN)/python -m tests.fuzz.run $$t .fuzz/corpus/$$t -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=.fuzz/ -print_final_stats=1 || exit 1; \
	done

browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		|| { apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver; }

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage*
