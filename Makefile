# Everything a fresh machine needs is set up here: `make test`, `make demo`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Debian packages the tests and the demo use (installed when missing and we are root).
DEB_PACKAGES := busybox-static docker-registry skopeo umoci runc crun iptables iproute2 apache2-utils openssl openssh-client
PYTEST_ARGS ?=

.PHONY: setup venv bytecode debs test lint demo bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# What pip does for a regular install, done for the editable one (and again after edits:
# compileall skips what is current): .pyc files and the @dataclass method cache
# (pybuild/dataclass_cache.py), so no command compiles our sources at start-up, whatever
# PYTHONDONTWRITEBYTECODE says.
bytecode: venv
	@$(PY) -m compileall -q pybuild
	@$(PY) -c "import pybuild.dataclass_cache as c; c.prime()"

debs:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
	     (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing >/dev/null)) ; \
	  else echo "not root: missing Debian packages$$missing (tests that need them are skipped)"; fi; \
	fi

setup: venv bytecode debs

lint: venv
	$(VENV)/bin/ruff check pybuild tests bench

test: setup lint
	@$(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: the test suite ran no tests"; exit 1; fi; exit $$rc

demo: setup
	$(PY) -m pybuild.cli.demo

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
