# crm-ingest: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
CONFIG ?=
RUN_ARGS ?=

.PHONY: run test test-sanitize bench fuzz build release deps test-deps bench-deps clean broker stop-broker install install-files

# Where `make install` puts things (FHS); DESTDIR prefixes every path, for packaging.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/crm-ingest
# The binary `make install-files` installs (`make install` builds it first, with the Swift runtime linked in), and
# install(1)'s strip flag (INSTALL_STRIP= keeps the debug symbols).
BINARY ?= .build/release/crm-ingest
INSTALL_STRIP ?= -s
# What the binary built by `make install` or the Dockerfile (Swift runtime linked in) needs at run time on
# Debian/Ubuntu (the Dockerfile's runtime stage installs the same; a test checks both against the libraries the
# binary links): librabbitmq, libcurl, SQLite, libsodium, the C++ runtime, and the CA certificates for amqps:// and
# SQS over HTTPS.
RUNTIME_PACKAGES := librabbitmq4 libcurl4 libsqlite3-0 libsodium23 libstdc++6 ca-certificates

## run: install what is missing, build, start a local RabbitMQ if none answers on 127.0.0.1:5672, and start the
## daemon on its built-in defaults (SQLite under ./data, consuming the queue crm.events, HTTP on 127.0.0.1:8080 or,
## when that port is taken, on a free one: the log line "http server listening" says which).
run: deps build broker
	@http="$${CRM_INGEST_HTTP:-}"; \
	if [ -z "$$http" ] && (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then \
		http=127.0.0.1:0; echo "127.0.0.1:8080 is taken: the HTTP server takes a free port (see \"http server listening\" below)"; \
	fi; \
	CRM_INGEST_HTTP="$${http:-127.0.0.1:8080}" exec .build/debug/crm-ingest run $(if $(CONFIG),--config $(CONFIG)) $(RUN_ARGS)

broker:
	@scripts/local-broker.sh ensure

stop-broker:
	@scripts/local-broker.sh stop

## test: install what is missing and run every test.
test: test-deps
	$(SWIFT) build --build-tests
	@# Two phases (the SQS source tests after the rest); failures are summed up at the end of the output.
	SWIFT=$(SWIFT) scripts/test-with-servers.sh scripts/run-test-phases.sh

## test-sanitize: install what is missing and run the unit tests (no servers, no daemon processes) under
## AddressSanitizer, then ThreadSanitizer, each built into a folder of its own (.build-address, .build-thread: every
## dependency is rebuilt, so the first run is slow). Fails on any test failure or sanitizer report;
## Docs/HARDENING.md says which suites run. SANITIZERS=thread runs one.
test-sanitize: deps
	SWIFT=$(SWIFT) scripts/test-sanitize.sh

## bench: install what is missing, build in release mode, run every scenario against its same-run baseline and
## rewrite Docs/BENCHMARKS.md (scripts/bench/bench.py says which BENCH_* variables size it). Takes about 30 minutes.
bench: bench-deps
	$(SWIFT) build -c release --product crm-ingest
	$(SWIFT) build -c release --product crm-ingest-bench
	python3 scripts/bench/bench.py

## fuzz: install what is missing, build the libFuzzer targets (Fuzz/) with AddressSanitizer and run each for
## FUZZ_SECONDS (default 60); FUZZ_TARGETS=FuzzDefaultFormat,FuzzSNSUnwrap picks some. Prints executions, exec/s
## and coverage per target, and fails naming the input when one crashed (scripts/fuzz.sh says more).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: deps
	SWIFT=$(SWIFT) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS=$(FUZZ_TARGETS) scripts/fuzz.sh

bench-deps:
	@scripts/install-deps.sh bench

build: deps
	$(SWIFT) build --product crm-ingest

release: deps
	$(SWIFT) build -c release --product crm-ingest

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

## install: build in release mode with the Swift runtime linked in (the installed binary needs no toolchain, only
## RUNTIME_PACKAGES) and install it, the systemd unit, the default configuration (kept if one is there already) and
## the docs. `make install PREFIX=/usr DESTDIR=/tmp/pkg` for a package.
install: deps
	$(SWIFT) build -c release --product crm-ingest --static-swift-stdlib --scratch-path .build-install
	@$(MAKE) --no-print-directory install-files BINARY=.build-install/release/crm-ingest

install-files:
	install -D -m 0755 $(INSTALL_STRIP) $(BINARY) $(DESTDIR)$(BINDIR)/crm-ingest
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
		Config/crm-ingest.service > $(DESTDIR)$(UNITDIR)/crm-ingest.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/crm-ingest.service
	install -d $(DESTDIR)$(SYSCONFDIR)/crm-ingest
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/crm-ingest/crm-ingest.yaml ]; then \
		echo "kept $(DESTDIR)$(SYSCONFDIR)/crm-ingest/crm-ingest.yaml (the shipped one is $(DESTDIR)$(DOCDIR)/crm-ingest.yaml)"; \
	else \
		install -m 0644 Config/crm-ingest.yaml $(DESTDIR)$(SYSCONFDIR)/crm-ingest/crm-ingest.yaml; \
	fi
	install -D -m 0644 Config/crm-ingest.yaml $(DESTDIR)$(DOCDIR)/crm-ingest.yaml
	install -m 0644 README.md Docs/*.md $(DESTDIR)$(DOCDIR)/
	@echo "installed crm-ingest under $(DESTDIR)$(PREFIX); then: systemctl daemon-reload && systemctl enable --now crm-ingest"

clean:
	rm -rf .build .build-install
