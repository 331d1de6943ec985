# Beacon. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION := v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: help run build check test e2e browser faults collector lint bench loadtest loadtest-smoke openapi tools docker clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

run: ## run Beacon (API :8080, dashboard :8081, workers); starts a local PostgreSQL in .data/ when DATABASE_URL is unset
	@scripts/run-local.sh

build: ## build bin/beacon (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/beacon ./cmd/beacon

check: lint test e2e browser faults loadtest-smoke ## everything CI runs: lint, unit and integration tests, telemetry contract tests, browser tests, fault suite, load test smoke run

test: ## run every test against a real PostgreSQL (a throwaway one when TEST_DATABASE_URL is unset)
	@scripts/with-testdb.sh $(GO) test -race -count=1 -timeout 20m ./...

collector: ## build the OpenTelemetry Collector from otel-collector/builder-config.yaml into bin/otelcol-beacon
	@scripts/build-collector.sh

e2e: collector ## telemetry contract tests: collector, Prometheus and exporters for real (see docs/observability.md)
	@scripts/with-testdb.sh $(GO) test -tags e2e -count=1 -timeout 15m -v ./observability/

browser: ## browser tests: dashboard, Swagger UI, River UI in Debian's Chromium (screenshots in test-results/)
	@scripts/browser-test.sh

lint: tools ## gofmt, go vet, staticcheck and the OpenAPI document (Redocly, pinned in tools/openapi-lint)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags e2e,faults ./...
	$$($(GO) env GOPATH)/bin/staticcheck -tags e2e,faults ./...
	@GO=$(GO) tools/openapi-lint/lint.sh

bench: ## benchmarks, 5 runs each, against a throwaway PostgreSQL; prints medians and what telemetry costs
	@# Telemetry's first: the stats benchmark's month of rows keeps PostgreSQL busy for a while after.
	@set -o pipefail; out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
		scripts/with-testdb.sh bash -c ' \
			$(GO) test -run "^$$" -bench GetMonitor -benchmem -count 5 ./internal/httpapi/ && \
			$(GO) test -run "^$$" -bench . -skip GetMonitor -benchmem -count 5 ./...' | tee "$$out" \
		&& echo && $(GO) run ./scripts/benchratio < "$$out"

loadtest: collector ## end-to-end load test (~5 min): job and request paths of real beacon processes on a throwaway PostgreSQL; one table with ratios
	@GO=$(GO) $(GO) run ./scripts/loadtest

loadtest-smoke: collector ## the load test shortened for CI (~1.5 min); fails if any request or check job failed
	@GO=$(GO) $(GO) run ./scripts/loadtest -smoke

faults: ## fault-injection suite (~2 min; needs haproxy): kill -9 of a worker, PostgreSQL restarts, rolling restarts behind haproxy, revoked users, OpenAPI fuzzing
	@dir=$$(mktemp -d /tmp/beacon-faults.XXXXXX) && chmod 755 "$$dir" && \
	trap 'for d in "$$dir"/pg-*; do [ -d "$$d" ] && scripts/pg.sh stop "$$d"; done; rm -rf "$$dir"' EXIT && \
	FAULTS_WORKDIR="$$dir" GO=$(GO) $(GO) test -tags faults -v -count=1 -parallel 8 -timeout 20m ./faults/

openapi: ## print the OpenAPI document
	@$(GO) run ./cmd/beacon openapi

tools: ## install pinned dev tools (staticcheck)
	@test -x $$($(GO) env GOPATH)/bin/staticcheck && $$($(GO) env GOPATH)/bin/staticcheck -version | grep -q $(STATICCHECK_VERSION:v%=%) \
		|| $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

docker: ## build the container image (needs a Docker engine)
	docker build --build-arg VERSION=$(VERSION) -t beacon:$(VERSION) .

clean: ## remove build output (keeps .data/)
	rm -rf bin
