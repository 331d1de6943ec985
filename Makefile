# Beacon. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION := v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: help run demo up down build check test e2e browser faults collector lint generate helm bench loadtest loadtest-smoke openapi tools docker clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

run: ## run Beacon (API :8080, dashboard :8081, workers); starts a local PostgreSQL in .data/ when DATABASE_URL is unset
	@scripts/run-local.sh

demo: ## make run plus the demo targets (faults toggled by cmd/beacon-demo/flags/flags.json) and a traffic generator; see docs/demo.md
	@scripts/demo.sh

# `make up`/`down`: the compose files (docker-compose.demo.yml joins when present) and the
# profiles started besides the core stack (PROFILES= for the core alone).
PROFILES ?= monitoring
COMPOSE_FILES := -f docker-compose.yml -f docker-compose.observability.yml $(if $(wildcard docker-compose.demo.yml),-f docker-compose.demo.yml)
NEED_DOCKER := command -v docker >/dev/null 2>&1 || { echo "make: docker not found: install Docker Engine 28.1+ with Compose 2.35+, or use make run (no Docker)" >&2; exit 1; }

up: ## start the containers: core + PROFILES (default monitoring; e.g. PROFILES="monitoring admin"); writes .env with random secrets on first use
	@$(NEED_DOCKER)
	@scripts/env-init.sh
	docker compose $(COMPOSE_FILES) $(foreach p,$(PROFILES),--profile $(p)) up --build -d
	@echo "up: dashboard http://localhost:8081, API docs http://localhost:8080/docs, Grafana http://localhost:3000 (monitoring; admin password: grep GRAFANA_ADMIN_PASSWORD .env)"

down: ## stop the containers of make up, every profile (volumes are kept)
	@$(NEED_DOCKER)
	docker compose $(COMPOSE_FILES) --profile '*' down

build: ## build bin/beacon (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/beacon ./cmd/beacon

check: lint test e2e browser faults loadtest-smoke helm ## everything CI runs: lint, unit and integration tests, telemetry contract tests, browser tests, fault suite, load test smoke run, Helm chart checks

test: ## run every test against a real PostgreSQL (a throwaway one when TEST_DATABASE_URL is unset)
	@scripts/with-testdb.sh $(GO) test -race -count=1 -timeout 20m ./...

helm: ## Helm chart (docs/kubernetes.md): lint and render each deploy/helm/beacon/ci values file, then check every object strictly (deploy/helm/chartcheck)
	@for f in deploy/helm/beacon/ci/*-values.yaml; do \
		scripts/helm.sh lint --strict deploy/helm/beacon -f "$$f" >/dev/null && \
		scripts/helm.sh template beacon deploy/helm/beacon --kube-version 1.30.0 -f "$$f" >/dev/null && echo "helm: $$f renders" || exit 1; done
	@scripts/with-testdb.sh $(GO) -C deploy/helm/chartcheck test -count=1 -timeout 10m ./...

collector: ## build the OpenTelemetry Collector from otel-collector/builder-config.yaml into bin/otelcol-beacon
	@scripts/build-collector.sh

e2e: collector ## telemetry contract tests (~10 min): collector, Prometheus and exporters at compose's versions for real (see docs/observability.md)
	@GO=$(GO) scripts/build-prometheus.sh
	@scripts/with-testdb.sh $(GO) test -tags e2e -count=1 -timeout 25m -v ./observability/

browser: ## browser tests: dashboard, Swagger UI, River UI in Debian's Chromium (screenshots in test-results/)
	@scripts/browser-test.sh

lint: tools ## gofmt, go vet, staticcheck, the OpenAPI document (Redocly) and the dashboard's JavaScript (ESLint, tsc --checkJs), pinned in tools/*-lint; sqlc's generated code is current
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags e2e,faults ./...
	$$($(GO) env GOPATH)/bin/staticcheck -tags e2e,faults ./...
	@GO=$(GO) tools/openapi-lint/lint.sh
	@tools/frontend-lint/lint.sh
	@GO=$(GO) scripts/sqlc.sh diff || { echo "sqlc: the generated code (*db packages) is stale or queries.sql does not compile: run make generate"; exit 1; }

bench: ## benchmarks, 5 runs each, against a throwaway PostgreSQL; prints medians and what telemetry costs
	@# Telemetry's first: the stats benchmark's month of rows keeps PostgreSQL busy for a while after.
	@set -o pipefail; out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
		scripts/with-testdb.sh bash -c ' \
			$(GO) test -run "^$$" -bench GetMonitor -benchmem -count 5 ./internal/httpapi/ && \
			$(GO) test -run "^$$" -bench . -skip GetMonitor -benchmem -count 5 ./...' | tee "$$out" \
		&& echo && $(GO) run ./scripts/benchratio < "$$out"

loadtest: collector ## end-to-end load test (~15 min): job and request paths of real beacon processes on a throwaway PostgreSQL, 20k scheduled monitors with 1/2/4 workers, stats over 10^6-10^7 rows; one table with ratios
	@GO=$(GO) $(GO) run ./scripts/loadtest

loadtest-smoke: collector ## the load test shortened for CI (~2 min); fails if any request or check job failed
	@GO=$(GO) $(GO) run ./scripts/loadtest -smoke

faults: ## fault-injection suite (~2 min; needs haproxy): kill -9 of a worker, PostgreSQL restarts, rolling restarts behind haproxy, revoked users, OpenAPI fuzzing
	@dir=$$(mktemp -d /tmp/beacon-faults.XXXXXX) && chmod 755 "$$dir" && \
	trap 'for d in "$$dir"/pg-*; do [ -d "$$d" ] && scripts/pg.sh stop "$$d"; done; rm -rf "$$dir"' EXIT && \
	FAULTS_WORKDIR="$$dir" GO=$(GO) $(GO) test -tags faults -v -count=1 -parallel 8 -timeout 20m ./faults/

generate: ## regenerate the typed Go of every queries.sql with sqlc (pinned; built once into ~/.cache/beacon/sqlc)
	@GO=$(GO) scripts/sqlc.sh generate

openapi: ## print the OpenAPI document
	@$(GO) run ./cmd/beacon openapi

tools: ## install pinned dev tools (staticcheck)
	@test -x $$($(GO) env GOPATH)/bin/staticcheck && $$($(GO) env GOPATH)/bin/staticcheck -version | grep -q $(STATICCHECK_VERSION:v%=%) \
		|| $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

docker: ## build the container image (needs a Docker engine)
	docker build --build-arg VERSION=$(VERSION) -t beacon:$(VERSION) .

clean: ## remove build output (keeps .data/)
	rm -rf bin
