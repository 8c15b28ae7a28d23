# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 5300
METRICS_PORT ?= 9153
BIN    := $(VENV)/bin

# make install: a virtualenv of its own in PREFIX (Debian's Python refuses
# `pip install` into the system one), the command linked into BINDIR, the
# man pages in MANDIR and the systemd units, ExecStart pointing into PREFIX,
# in UNITDIR. DESTDIR stages it all elsewhere (for a package build).
PREFIX  ?= /opt/dnsbl
BINDIR  ?= /usr/local/bin
MANDIR  ?= /usr/local/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=
ROOTDIR := $(DESTDIR)$(PREFIX)

.PHONY: run test check lint clean install uninstall

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml setup.py dnsbl/_fastpath.c \
		dnsbl/datasets/_ip4scan.c dnsbl/datasets/_ip4index.c dnsbl/datasets/_ip4index.h
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	@# Byte-compile as a regular install does (an editable one does not), so
	@# start-up does not compile every module each time.
	@$(BIN)/python -m compileall -q dnsbl
	@echo "Serving zones/ on 127.0.0.1:$(PORT). Try:"
	@echo "  dig @127.0.0.1 -p $(PORT) 2.0.0.127.bl.example.org A"
	@echo "  dig @127.0.0.1 -p $(PORT) 2.0.0.127.bl.example.org TXT"
	@echo "Metrics: http://127.0.0.1:$(METRICS_PORT)/metrics"
	$(BIN)/dnsbl serve --config zones/dnsbl.toml --listen 127.0.0.1:$(PORT) \
		--metrics 127.0.0.1:$(METRICS_PORT)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

check: $(VENV)/.installed
	$(BIN)/dnsbl check --config zones/dnsbl.toml

# The linters once, not at each run: installed from the package index like
# the test tools, and nothing else needs the network or root.
$(VENV)/.lint-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $@

lint: $(VENV)/.lint-installed
	$(BIN)/ruff check dnsbl tests benchmarks
	$(BIN)/mypy dnsbl

clean:
	rm -rf $(VENV) build *.egg-info

install:
	@# Never turn a directory that holds something else into a virtualenv.
	@if [ -d '$(ROOTDIR)' ] && [ -n "$$(ls -A '$(ROOTDIR)')" ] && [ ! -f '$(ROOTDIR)/pyvenv.cfg' ]; then \
		echo "make install: $(ROOTDIR) exists and is not a dnsbl virtualenv; choose another PREFIX" >&2; \
		exit 1; fi
	$(PYTHON) -m venv '$(ROOTDIR)'
	'$(ROOTDIR)/bin/python' -m pip install --quiet --upgrade --upgrade-strategy only-if-needed .
	@# A virtualenv records its own path; staged under DESTDIR, it must name
	@# the place it will run from.
	@if [ -n '$(DESTDIR)' ]; then \
		grep -rlI -- '$(ROOTDIR)' '$(ROOTDIR)/bin' '$(ROOTDIR)/pyvenv.cfg' \
		| xargs -r sed -i 's|$(ROOTDIR)|$(PREFIX)|g'; fi
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(MANDIR)/man8' '$(DESTDIR)$(MANDIR)/man5' \
		'$(DESTDIR)$(UNITDIR)'
	ln -sfn '$(PREFIX)/bin/dnsbl' '$(DESTDIR)$(BINDIR)/dnsbl'
	install -m 644 docs/dnsbl.8 '$(DESTDIR)$(MANDIR)/man8/dnsbl.8'
	install -m 644 docs/dnsbl.toml.5 '$(DESTDIR)$(MANDIR)/man5/dnsbl.toml.5'
	sed 's|/opt/dnsbl/bin/dnsbl|$(PREFIX)/bin/dnsbl|g' systemd/dnsbl.service \
		> '$(DESTDIR)$(UNITDIR)/dnsbl.service'
	chmod 644 '$(DESTDIR)$(UNITDIR)/dnsbl.service'
	install -m 644 systemd/dnsbl.socket '$(DESTDIR)$(UNITDIR)/dnsbl.socket'
	@echo "installed $$('$(ROOTDIR)/bin/python' -m dnsbl --version) in $(PREFIX); units in $(UNITDIR)"

uninstall:
	rm -f '$(DESTDIR)$(MANDIR)/man8/dnsbl.8' '$(DESTDIR)$(MANDIR)/man5/dnsbl.toml.5' \
		'$(DESTDIR)$(UNITDIR)/dnsbl.service' '$(DESTDIR)$(UNITDIR)/dnsbl.socket'
	@# The link only if it is ours; PREFIX only if it is a virtualenv.
	@if [ "$$(readlink '$(DESTDIR)$(BINDIR)/dnsbl')" = '$(PREFIX)/bin/dnsbl' ]; then \
		rm -f '$(DESTDIR)$(BINDIR)/dnsbl'; fi
	@if [ -f '$(ROOTDIR)/pyvenv.cfg' ]; then \
		rm -rf '$(ROOTDIR)/bin' '$(ROOTDIR)/include' '$(ROOTDIR)/lib' '$(ROOTDIR)/lib64' \
			'$(ROOTDIR)/share' '$(ROOTDIR)/pyvenv.cfg'; \
		rmdir '$(ROOTDIR)' 2>/dev/null || echo "kept $(ROOTDIR): it holds other files"; fi
