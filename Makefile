# `make demo` and `make test` build .venv from pinned versions on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench clean

$(STAMP): Testing/requirements.txt Resources/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -r Testing/requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile --no-deps --no-build-isolation -e .
	@# pip compiles the packages one file at a time; compileall makes the same .pyc files on every core (about 20 s less
	@# on 2 cores). A file that does not compile is left to Python, as pip leaves it.
	-$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mmreg demo --output-dir demo-output

# make test (CI) leaves out the extended tier (Testing/Python/extended_tier.py): slow runs of capabilities that faster
# tests also reach. make test-all runs every test. Files go to the workers longest first (Testing/Python/file_order.py).
test: $(STAMP)
	$(BIN)/python -m pytest Testing/Python -q -n 2 --dist loadfile --no-loadscope-reorder -m "not extended"

test-all: $(STAMP)
	$(BIN)/python -m pytest Testing/Python -q -n 2 --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python Testing/Benchmarks/run_benchmarks.py

clean:
	rm -rf $(VENV) demo-output bench-output
