# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
DEMO_OUT ?= demo-out

.PHONY: demo test lint bench bench-bombs bench-spark install install-spark clean lock sample-logs

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the locked dependencies into $(VENV) (log: $(VENV)/install.log) ..."
	@( $(BIN)/python -m pip install --disable-pip-version-check --require-hashes -r requirements.lock \
	  && $(BIN)/python -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e . ) \
	  > $(VENV)/install.log 2>&1 \
	  || { cat $(VENV)/install.log; echo "Installation failed: see above"; exit 1; }
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# The optional Spark engine (pyspark, needs Java 17): the base lock plus the spark extra, hash-locked.
install-spark: $(STAMP)
	@$(BIN)/python -m pip install --disable-pip-version-check -q --require-hashes -r requirements-spark.lock

demo: $(STAMP)
	@rm -rf $(DEMO_OUT)
	$(BIN)/forensics run sample_logs/case.toml --out $(DEMO_OUT)
	@echo "Demo outputs are in $(DEMO_OUT)/"

lint: $(STAMP)
	$(BIN)/ruff check forensics tests benchmarks sample_logs
	$(BIN)/mypy forensics

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_bombs.py

# What the Spark engine costs per line (local[2]), for the README's plan of a large case.
bench-spark: install-spark
	$(BIN)/python benchmarks/bench_spark.py

# Peak memory of an ingest of hostile inputs (a gzip bomb, one 512 MiB line), built in a temp dir.
bench-bombs: $(STAMP)
	$(BIN)/python benchmarks/bench_bombs.py

# Regenerate the demo incident (deterministic: the same bytes every time).
sample-logs:
	$(PYTHON) sample_logs/generate.py

# Re-pin dependencies after changing pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra spark --generate-hashes --python-version 3.11 \
	  -c requirements.lock -o requirements-spark.lock

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
