# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test install lint migrations-check worker clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e ".[example,postgres,redis,twilio,aliyun,tencent,xlsx]" --group test --group dev
	touch $@

install: $(VENV)/.installed

# The example project's development mode (zero configuration); without
# DJANGO_DEBUG=1 it is in production mode and wants its environment.
demo: export DJANGO_DEBUG = 1
demo: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py sms_service_demo
	$(BIN)/python manage.py runserver 127.0.0.1:8000

# The scale-out test and the reliability scenarios start servers and Celery
# workers of their own and repoint this process's broker: each runs in a pytest
# process of its own, after the rest of the suite. tox.ini runs the same
# pytest invocations (keep the two in step).
RELIABILITY := worker_killed broker_down cache_down database_restart

test: install
	bash tests/sdk/install.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS) --ignore=tests/test_reliability.py --ignore=tests/test_scale_out.py
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/test_scale_out.py
	for scenario in $(RELIABILITY); do \
		$(BIN)/python -m pytest $(PYTEST_ARGS) tests/test_reliability.py -k $$scenario || exit 1; \
	done

lint: install
	$(BIN)/ruff check sms_service tests example_project benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

migrations-check: install
	DJANGO_DEBUG=1 $(BIN)/python manage.py makemigrations sms_service --check --dry-run

worker: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/celery -A example_project worker -l info

clean:
	rm -rf $(VENV) .venv-sdk tests/sdk/js/node_modules var
