# fleet: the two set-up commands are `make demo` and `make test` (as root, Debian 12).
# Both install what is missing first, and both can be run again after an interruption.

PYTHON ?= /usr/bin/python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .make

# Debian packages fleet needs on the control machine (HAProxy for the router tests that run one
# here). debootstrap builds the stacks and the lab hosts' bare Debian; apt-cacher-ng caches
# Debian's packages for both (lab hosts install theirs through it when provisioned). postgresql-client:
# `fleet pg:psql` and pg:backups run psql, pg_dump and pg_restore here, against the add-on hosts.
DEB_PACKAGES := systemd-container systemd haproxy openssh-server openssh-client git \
                python3 python3-venv python3-psutil rsync iproute2 nftables ca-certificates zstd \
                wrk hey cron debootstrap apt-cacher-ng postgresql-client

.PHONY: install demo test test-repeat lint unit clean-lab help

help:
	@echo "make demo   install, boot a 3-host lab, provision it, print its health, deploy examples/python (web=2), print its URL"
	@echo "make test   install, lint, type-check, run every test (lab tests included)"
	@echo "make test-repeat N=3   run the lab tests N times in a row; report every test that did not pass every time"

install: $(STAMPS)/venv

$(STAMPS)/deb: Makefile
	@mkdir -p $(STAMPS)
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@# Node.js and npm: tests make pnpm and yarn lock files with them (builds use the stack's own); kept if installed
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
	@touch $@

$(STAMPS)/venv: pyproject.toml $(STAMPS)/deb
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

demo: install
	$(BIN)/fleet lab.up --nodes 3
	$(BIN)/fleet nodes.provision
	$(BIN)/fleet nodes.status
	$(BIN)/fleet apps.info -a demo-python >/dev/null 2>&1 || $(BIN)/fleet apps.create demo-python
	$(BIN)/fleet deploy -a demo-python examples/python
	$(BIN)/fleet ps.scale -a demo-python web=2
	$(BIN)/fleet ps -a demo-python
	$(BIN)/fleet open -a demo-python

lint: install
	$(BIN)/ruff check fleet tests tasks.py bench
	$(BIN)/mypy fleet tasks.py tests/flakes.py  # the whole package, strict (pyproject.toml)

unit: install
	$(BIN)/pytest -q tests/unit

test: install lint
	@$(BIN)/pytest -q --durations=25 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure"; exit 1; fi; exit $$rc

N ?= 3
test-repeat: install
	$(BIN)/python -m tests.flakes $(N) tests/lab

clean-lab: install
	$(BIN)/fleet lab.down
