SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.NOTPARALLEL:
MAKEFLAGS += --no-builtin-rules

# buf is run at a pinned version rather than tracked in go.mod.
BUF := go run github.com/bufbuild/buf/cmd/buf@v1.75.0

# Time each fuzz target runs for in `make fuzz`, and inside `make test`.
# The short run inside `make test` is a count of inputs, not a time: with
# a time, Go 1.26's fuzzing coordinator can fail a target with a bare
# "context deadline exceeded" as the time runs out (golang/go#75804, fixed
# in Go 1.27), which no input caused.
FUZZTIME ?= 30s
SHORT_FUZZTIME ?= 10000x
# The web console (web/, docs/console.md) is built with the npm packages
# pinned in web/package-lock.json.
NPM ?= npm

# Flags for the full test run; set RACE= to run without the race detector
# (which needs cgo and a C compiler).
RACE ?= -race

.PHONY: help
help: ## Show this help
	@echo "Usage: make <target> [VAR=value]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Run the Weft server (go run ./cmd/weft server)
	go run ./cmd/weft server

.PHONY: build
build: ## Build the weft binary into bin/weft
	go build -o bin/weft ./cmd/weft

.PHONY: generate
generate: ## Generate Go code in gen/ from proto/
	$(BUF) generate

.PHONY: lint-proto
lint-proto: ## Lint the protobuf definitions
	$(BUF) lint

.PHONY: check-generate
check-generate: ## Fail if gen/ differs from what proto/ generates
	@git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "check-generate: not a git work tree" >&2; exit 1; }
	$(BUF) generate
	@status="$$(git status --porcelain --untracked-files=all -- gen/)"; \
	if [[ -n "$$status" ]]; then \
		echo "$$status" >&2; \
		git --no-pager diff --stat -- gen/ >&2; \
		echo "gen/ is stale: run make generate" >&2; \
		exit 1; \
	fi
	@echo "gen/ is up to date"

.PHONY: console
console: ## Build the web console: npm ci, TypeScript from proto/ into web/src/gen, then web/dist
	cd web && $(NPM) ci --no-audit --no-fund
	$(BUF) generate --template web/buf.gen.yaml
	cd web && $(NPM) run --silent typecheck && $(NPM) run --silent build

.PHONY: check-console
check-console: ## Fail if web/dist or web/src/gen differ from a fresh build from the lockfile
	@git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "check-console: not a git work tree" >&2; exit 1; }
	@$(MAKE) --no-print-directory console
	@status="$$(git status --porcelain --untracked-files=all -- web/dist/ web/src/gen/)"; \
	if [[ -n "$$status" ]]; then \
		echo "$$status" >&2; \
		git --no-pager diff --stat -- web/dist/ web/src/gen/ >&2; \
		echo "web/dist or web/src/gen is stale: run make console and commit the result" >&2; \
		exit 1; \
	fi
	@echo "web/dist and web/src/gen are up to date"

.PHONY: screenshots
screenshots: ## Take the console's screenshots (docs/console/*.png) in its browser tests
	WEFT_SCREENSHOTS=1 go test -count=1 -run '^TestConsole$$' ./web/

.PHONY: console-perf
console-perf: ## Measure the console with 50,000 runs and a 3,000-step run (docs/console.md)
	WEFT_CONSOLE_PERF=1 go test -count=1 -timeout 20m -run '^TestConsolePerf$$' -v ./web/

.PHONY: vet
vet: ## Run go vet, here and for Windows and macOS (the files of other systems build too)
	go vet ./...
	CGO_ENABLED=0 GOOS=windows go vet ./...
	CGO_ENABLED=0 GOOS=darwin go vet ./...

.PHONY: fmt-check
fmt-check: ## Fail if any Go file is not gofmt-formatted
	@unformatted="$$(gofmt -l .)"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "$$unformatted" >&2; \
		echo "files above are not gofmt-formatted: run gofmt -w" >&2; \
		exit 1; \
	fi

.PHONY: test
test: fmt-check vet ## Run all checks: fmt-check, vet, tests with -race, a short fuzz run, check-generate, check-console
	go test $(RACE) -timeout 20m ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(SHORT_FUZZTIME)
	@$(MAKE) --no-print-directory check-generate
	@if command -v $(NPM) >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory check-console; \
	else \
		echo "check-console skipped: $(NPM) is not on the PATH"; \
	fi

.PHONY: test-short
test-short: ## Run the short tests
	go test -short ./...

.PHONY: bench
bench: ## Run the benchmarks
	go test -run '^$$' -bench . -benchmem ./...

.PHONY: load
load: build ## Run the load tool: throughput, one-client latency, --sync always (docs/performance.md)
	bin/weft bench -n 10000 -c 64 --floor
	bin/weft bench -n 500 -c 1
	bin/weft bench -n 2000 -c 64 --sync always --floor

.PHONY: bench-scale
bench-scale: ## Scale measurements: a 12,004-event foreach (N=1000/2000/3000) and 100,000 parked waits
	WEFT_SCALE=1 go test -count=1 -timeout 30m -run 'TestLongHistory|TestParkedWaits' -v ./internal/bench/

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s)
	@targets="$$(go test -list '^Fuzz' ./... | awk '/^Fuzz/ { names[n++] = $$1; next } /^ok/ { for (i = 0; i < n; i++) print $$2, names[i]; n = 0 }')"; \
	if [[ -z "$$targets" ]]; then echo "no fuzz targets found"; exit 0; fi; \
	while read -r pkg name; do \
		echo "==> $$pkg $$name ($(FUZZTIME))"; \
		go test -run '^$$' -fuzz "^$${name}\$$" -fuzztime "$(FUZZTIME)" "$$pkg" </dev/null; \
	done <<<"$$targets"

# Size of `make chaos`: workflows, the time they are started over, and the seed.
N ?= 5000
DURATION ?= 10m
SEED ?= 1

.PHONY: chaos
chaos: ## Run the long chaos proof (N, DURATION, SEED)
	go run ./cmd/weft-chaos -n $(N) -duration $(DURATION) -seed $(SEED)

# Size of `make simulate`: cases per profile, and the seed (0: a random one).
SIM_CHECKS ?= 20000
SIM_SEED ?= 0

.PHONY: simulate
simulate: ## Run the long simulation of the workflow core (SIM_CHECKS cases per profile, SIM_SEED)
	go test -count=1 -timeout 3h -run '^TestSimulation$$' -v ./orchestrator/workflow/ -rapid.checks=$(SIM_CHECKS) -rapid.seed=$(SIM_SEED)

.PHONY: tidy
tidy: ## Tidy go.mod and go.sum
	go mod tidy
