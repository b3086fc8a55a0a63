# crm-ingest: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
CONFIG ?=
RUN_ARGS ?=

.PHONY: run test bench build release deps test-deps bench-deps clean broker stop-broker

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

## bench: install what is missing, build in release mode, run every scenario against its same-run baseline and
## rewrite Docs/BENCHMARKS.md (scripts/bench/bench.py says which BENCH_* variables size it). Takes about 30 minutes.
bench: bench-deps
	$(SWIFT) build -c release --product crm-ingest
	$(SWIFT) build -c release --product crm-ingest-bench
	python3 scripts/bench/bench.py

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

clean:
	rm -rf .build
