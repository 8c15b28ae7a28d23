# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 5300
METRICS_PORT ?= 9153
BIN    := $(VENV)/bin

.PHONY: run test check lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
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

lint: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test,dev]'
	$(BIN)/ruff check dnsbl tests benchmarks
	$(BIN)/mypy dnsbl

clean:
	rm -rf $(VENV) build *.egg-info
