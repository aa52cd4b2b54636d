# The project's verbs: `make run` sets up and starts everything, `make test` sets up and
# runs the whole suite, `make check` runs the linters and Django's deploy checks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NPM := node_modules/.installed

.PHONY: setup run test check chromium migrate clean benchmark benchmark-ingest benchmark-replay \
	benchmark-runtimes benchmark-leases benchmark-live benchmark-s3 benchmark-capacity \
	benchmark-video

setup: $(STAMP_PY) $(STAMP_NPM) chromium var

# The server (bctrl-server) and the Python client and CLI (bctrl, sdk/python), both editable.
$(STAMP_PY): pyproject.toml sdk/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v 'is ignored' || true
	$(PY) -m pip install --quiet --disable-pip-version-check -e ./sdk/python 2>&1 | grep -v 'is ignored' || true
	$(PY) -c 'import django, channels, celery, playwright, bctrl'
	touch $@

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium, and bubblewrap, which confines each hosted browser (runtime_host/sandbox.py).
chromium:
	@command -v chromium >/dev/null 2>&1 && command -v bwrap >/dev/null 2>&1 || { \
		echo "Installing Debian's Chromium and bubblewrap (apt-get)…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium bubblewrap >/dev/null; \
	}

var:
	mkdir -p var

migrate: setup
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py bootstrap
	$(PY) manage.py serve

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	PYTHONPATH=. $(VENV)/bin/lint-imports --no-cache
	cd sdk/python && ../../$(VENV)/bin/mypy bctrl
	BCTRL_PRODUCTION=1 SECRET_KEY=check-deploy-$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
		ALLOWED_HOSTS=bctrl.example.com $(PY) manage.py check --deploy --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run

benchmark: setup
	$(PY) -m benchmarks.runs_api

benchmark-ingest: setup
	$(PY) -m benchmarks.recording_ingest

benchmark-replay: setup
	$(PY) -m benchmarks.recording_replay

benchmark-runtimes: setup
	$(PY) -m benchmarks.runtimes

benchmark-leases: setup
	$(PY) -m benchmarks.leases

benchmark-live: setup
	$(PY) -m benchmarks.live_view

benchmark-capacity: setup
	$(PY) -m benchmarks.capacity

benchmark-video: setup
	$(PY) -m benchmarks.video

benchmark-s3: setup
	$(PY) -m benchmarks.object_storage

clean:
	rm -rf $(VENV) node_modules var
