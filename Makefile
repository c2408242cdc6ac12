# Versions live in two places only: go.mod (libraries) and internal/tools/go.mod
# (builder, mdatagen, staticcheck, benchstat); builder-config.yaml names the same
# upstream release as go.mod, which `make generate` + the drift check keep honest.
GO        ?= go
TOOL      := $(GO) tool -modfile=$(CURDIR)/internal/tools/go.mod
DIST_DIR  := cmd/otelcol-custommetrics
CONFIG    ?= $(DIST_DIR)/config.yaml
BIN       := bin/otelcol-custommetrics
PKGS      := ./...
BENCH     ?= .
BENCHTIME ?= 1s
BENCHCOUNT ?= 6

.PHONY: build-example all run build test test-race fuzz-smoke lint generate check-generated bench testbed testbed-short clean

all: lint test

## run: build and run the distribution with the default configuration
run:
	$(GO) run ./$(DIST_DIR) --config $(CONFIG)

## build: build the distribution binary into bin/
build:
	$(GO) build -o $(BIN) ./$(DIST_DIR)

## test: run every test of the module (unit, conformance, integration)
test:
	$(GO) test -count=1 -timeout 20m $(PKGS)

test-race:
	$(GO) test -count=1 -race -timeout 30m $(PKGS)

## fuzz-smoke: run every fuzz target briefly (the seed corpus also runs in `make test`)
# A count, not a duration: with a duration, go1.26's fuzz coordinator can fail
# a target with "context deadline exceeded" at the deadline although nothing
# was found (golang/go#75804, fixed in go1.27). FUZZTIME=30s still works.
FUZZTIME ?= 50000x
fuzz-smoke:
	@set -e; for f in $$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz'); do \
	  for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
	    echo "fuzz ./$$(dirname $$f) $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f); \
	  done; \
	done

## lint: gofmt, go vet, staticcheck (pinned in internal/tools)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(TOOL) staticcheck $(PKGS)

## generate: regenerate mdatagen code and the distribution from builder-config.yaml
generate:
	$(GO) generate ./...
	$(TOOL) builder --config builder-config.yaml --skip-compilation --skip-get-modules
	gofmt -w $(DIST_DIR)/*.go

## check-generated: fail when committed generated files differ from a fresh `make generate`
check-generated: generate
	@git diff --exit-code -- . ':(exclude)go.sum' || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- receiver processor exporter cmd)" || { git status --porcelain -- receiver processor exporter cmd; echo "generate produced untracked files"; exit 1; }

## build-example: build examples/own-distribution with ocb, as the README's recipe says, and validate its config
build-example:
	cd examples/own-distribution && $(TOOL) builder --config manifest.yaml
	cd examples/own-distribution && ./_build/otelcol-mine validate --config config.yaml

## bench: run the benchmarks (compare two runs with `$(TOOL) benchstat old.txt new.txt`)
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) $(PKGS)

## testbed: the full load, loss and fault set (~10-15 min); writes docs/benchmarks.md and plots
testbed:
	$(GO) run ./testbed/cmd/testbed -out docs

## testbed-short: the CI set (< 5 min on 2 cores); fails on any loss or crash
testbed-short:
	$(GO) run ./testbed/cmd/testbed -short

clean:
	rm -rf bin
