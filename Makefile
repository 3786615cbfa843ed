# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The web app (web/): its npm packages, and its build inside the Python package.
WEB_MODULES := web/node_modules/.package-lock.json
WEB_BUILD := src/nuage/webapp/index.html
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) \
	web/index.html web/sw.js web/vite.config.ts web/tsconfig.json

.PHONY: install demo test lint typecheck unit pg-test bench clean web

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	./scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Node and npm come with the system packages ($(STAMP)).
$(WEB_MODULES): web/package.json web/package-lock.json | $(STAMP)
	cd web && npm ci
	touch $@

$(WEB_BUILD): $(WEB_MODULES) $(WEB_SOURCES)
	cd web && npm run build

web: $(WEB_BUILD)

install: $(STAMP) web

demo: $(STAMP) web
	$(BIN)/nuage demo

lint: $(STAMP) $(WEB_MODULES)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	cd web && npm run check

typecheck: $(STAMP)
	$(BIN)/mypy

# Four test processes on two cores: most tests wait on real peers (audio, timers, ringing)
# rather than compute; each test has its own ports, database and Redis prefix.
PYTEST = $(BIN)/pytest -q -n 4

unit: $(STAMP) web
	cd web && npx vitest run
	$(PYTEST)

# The same suite against the machine's PostgreSQL (database `test`).
pg-test: $(STAMP)
	NUAGE_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test $(PYTEST) -m "db"

test: web lint typecheck unit pg-test

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info web/node_modules src/nuage/webapp
