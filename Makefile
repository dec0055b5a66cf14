# Two commands for a newcomer: `make demo` and `make test`. Both create the virtualenv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
# Front-end builds from npm (package.json, pinned by package-lock.json), copied into frontend/build/ and
# served as our own static files (docs/ui.md). Reinstalled when the lock file or the copy script changes.
FRONTEND_STAMP := frontend/build/.installed-$(shell cat package-lock.json frontend/vendor.py | sha256sum | cut -c1-12)
# OHIF's published build (package.json "prebuilt", pinned with its integrity), fetched by npm into
# frontend/ohif/ and served as our own files (docs/dicomweb.md). Reinstalled when the pin or the script changes.
OHIF_STAMP := frontend/ohif/.stamp-$(shell cat package.json frontend/ohif.py | sha256sum | cut -c1-12)
PYTEST_ARGS ?= -n 2
DEMO_ENV := DEBUG=1

.PHONY: venv test lint format demo migrate results clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

$(FRONTEND_STAMP): package.json package-lock.json frontend/vendor.py
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	$(PYTHON) frontend/vendor.py
	@touch $@

$(OHIF_STAMP): package.json frontend/ohif.py
	$(PYTHON) frontend/ohif.py
	@rm -f frontend/ohif/.stamp-* && touch $@

venv: $(STAMP) $(FRONTEND_STAMP) $(OHIF_STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	DATABASE_URL=sqlite://:memory: $(DEMO_ENV) $(BIN)/mypy
	DATABASE_URL=sqlite://:memory: $(DEMO_ENV) $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest $(PYTEST_ARGS)

migrate: venv
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput

demo: migrate
	@$(DEMO_ENV) $(BIN)/python manage.py seed_demo
	@$(DEMO_ENV) $(BIN)/python manage.py demo_banner
	@$(DEMO_ENV) $(BIN)/python -m portal.demo

# The README's results table, from the newest file each benchmark wrote to benchmarks/results/ (docs/performance.md).
results: venv
	$(BIN)/python benchmarks/report.py

clean:
	rm -rf var/ $(VENV) node_modules/ frontend/build/ frontend/ohif/
