# crm-ingest: the two commands a newcomer needs are `make run` and `make test`.
SWIFT ?= swift
CONFIG ?=
RUN_ARGS ?=

.PHONY: run test build release deps test-deps clean

## run: install what is missing, build, and start the daemon on its built-in defaults (SQLite under ./data).
run: deps build
	.build/debug/crm-ingest run $(if $(CONFIG),--config $(CONFIG)) $(RUN_ARGS)

## test: install what is missing and run every test.
test: test-deps
	$(SWIFT) build --build-tests
	scripts/test-with-servers.sh $(SWIFT) test --skip-build

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
