# Beacon. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION := v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: help run build check test lint bench openapi tools docker clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## run Beacon (API + workers) on :8080; starts a local PostgreSQL in .data/ when DATABASE_URL is unset
	@scripts/run-local.sh

build: ## build bin/beacon (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/beacon ./cmd/beacon

check: lint test ## everything CI runs: lint, then every test

test: ## run every test against a real PostgreSQL (a throwaway one when TEST_DATABASE_URL is unset)
	@scripts/with-testdb.sh $(GO) test -race -count=1 -timeout 20m ./...

lint: tools ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$$($(GO) env GOPATH)/bin/staticcheck ./...

bench: ## benchmarks (stats endpoint over a month of results) against a throwaway PostgreSQL
	@scripts/with-testdb.sh $(GO) test -run '^$$' -bench . -benchmem ./...

openapi: ## print the OpenAPI document
	@$(GO) run ./cmd/beacon openapi

tools: ## install pinned dev tools (staticcheck)
	@test -x $$($(GO) env GOPATH)/bin/staticcheck && $$($(GO) env GOPATH)/bin/staticcheck -version | grep -q $(STATICCHECK_VERSION:v%=%) \
		|| $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

docker: ## build the container image (needs a Docker engine)
	docker build --build-arg VERSION=$(VERSION) -t beacon:$(VERSION) .

clean: ## remove build output (keeps .data/)
	rm -rf bin
