# Two commands are the contract: `make run` serves the chat, `make test` passes the tests,
# on a fresh machine with Python 3.11+ and nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := PYTHONPATH=backend $(BIN)/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test e2e screenshot vendor migrate token chat lint typecheck format check bench fuzz drill clean

help:
	@echo "make run      set up and serve the API on http://127.0.0.1:8000 (docs at /docs)"
	@echo "make test     set up and run the whole test suite (browser tests too when Chromium is found)"
	@echo "make e2e      browser tests in headless Chromium; screenshots in data/e2e/"
	@echo "make screenshot   retake docs/chat-page.png (the README's picture of the page)"
	@echo "make chat [USER=alice]   chat from the terminal with the running server"
	@echo "make token USER=alice [ADMIN=1]   print a bearer token"
	@echo "make migrate  apply database migrations"
	@echo "make drill    reliability drills against real server processes (slow)"
	@echo "make fuzz     schemathesis against the running API (FUZZ_EXAMPLES=50)"
	@echo "make bench    memory-store and service benchmarks vs the SDK's stock designs"
	@echo "make vendor   re-fetch the chat page's pinned JS libraries from npm (needs npm)"
	@echo "make lint | typecheck | format | check"

# Runs only when requirements.txt is newer than the stamp: every later command skips pip.
$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	@echo "Installing dependencies into $(VENV) (first run only, and after requirements.txt changes; ~2 min)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on -r requirements.txt
	@touch $(STAMP)
	@echo "Dependencies installed in $(VENV)."

install: $(STAMP)

run: $(STAMP)
	$(PY) -m app serve

migrate: $(STAMP)
	$(PY) -m app migrate

# USER must be given on the command line: the shell's own $$USER (often root, or empty) is
# never taken for it. `make chat USER=alice` chats as alice (the page's "Continue as alice").
token: $(STAMP)
ifneq ($(origin USER),command line)
	@echo 'make token needs a user name: make token USER=alice (ADMIN=1 adds the admin claim)' >&2; exit 2
endif
	@$(PY) -m app token --user "$(USER)" $(if $(ADMIN),--admin,)

chat: $(STAMP)
	@$(PY) -m app chat $(if $(filter command line,$(origin USER)),--user "$(USER)",)

# The slow drills (real server processes, kill -9, outages) run with `make drill`; CI runs both.
# The browser tests run too when a Chromium is found (else one line says they were skipped).
test: $(STAMP)
	$(BIN)/python -m pytest -m "not drill" $(PYTEST_ARGS)

# Headless Chromium (Debian's package, or CHROMIUM=/path) against a real server; fails without
# a browser. One screenshot per scene lands in data/e2e/.
e2e: $(STAMP)
	E2E=1 $(BIN)/python -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

screenshot: $(STAMP)
	E2E=1 $(BIN)/python -m pytest -m e2e tests/e2e -k readme_screenshot -q
	cp data/e2e/00-readme.png docs/chat-page.png

drill: $(STAMP)
	$(BIN)/python -m pytest -m drill tests/drills $(PYTEST_ARGS)

# Not part of `make test`: prints a table and writes data/bench/latest.json (BENCH_ARGS=--quick).
bench: $(STAMP)
	PYTHONPATH=backend:. $(BIN)/python -m bench $(BENCH_ARGS)

fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py $(if $(FUZZ_EXAMPLES),--max-examples $(FUZZ_EXAMPLES),)

# The chat page's libraries are committed; this re-creates them from npm and checks the pins.
vendor: $(STAMP)
	$(BIN)/python scripts/vendor.py

lint: $(STAMP)
	$(BIN)/ruff check backend tests bench scripts
	$(BIN)/ruff format --check backend tests bench scripts
	cd backend && ../$(BIN)/lint-imports --config ../pyproject.toml

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format backend tests bench scripts
	$(BIN)/ruff check --fix backend tests bench scripts

check: lint typecheck test

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
