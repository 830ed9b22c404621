# WS-191 backup replication. `make dev` runs the whole system locally; `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO    ?= go
GOBIN ?= $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

FUNCTIONS := $(notdir $(patsubst %/,%,$(wildcard functions/*/)))
BUILD_DIR ?= .build
GOFLAGS_LAMBDA := -tags lambda.norpc -trimpath -ldflags "-s -w"
LAMBDA_ENV := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
COVERPKG := ./shared/...,./functions/...
TEST_TIMEOUT ?= 25m
PIPELINE_BENCH_FLAGS ?= -rounds 3

.PHONY: all build test lint bench dev demo tools clean fuzz $(addprefix build-fn-,$(FUNCTIONS))

all: build

## build: one linux/arm64 bootstrap per function, under .build/<function>/bootstrap
build: $(addprefix build-fn-,$(FUNCTIONS))

$(addprefix build-fn-,$(FUNCTIONS)): build-fn-%:
	@mkdir -p $(BUILD_DIR)/$*
	$(LAMBDA_ENV) $(GO) build $(GOFLAGS_LAMBDA) -o $(BUILD_DIR)/$*/bootstrap ./functions/$*

# SAM's `BuildMethod: makefile` calls build-<LogicalId> with ARTIFACTS_DIR set.
# Each logical id maps to the function folder it deploys.
define sam_target
build-$(1):
	@test -n "$$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (sam build sets it)"; exit 2; }
	$$(LAMBDA_ENV) $$(GO) build $$(GOFLAGS_LAMBDA) -o $$(ARTIFACTS_DIR)/bootstrap ./functions/$(2)
endef
SAM_FUNCTIONS := ApiFunction:api ReplicateSupabaseFunction:replicate ReplicateS3Function:replicate \
	ReplicateGcsFunction:replicate HealthFunction:health RotateFunction:rotate WsFunction:ws SealFunction:seal
$(foreach f,$(SAM_FUNCTIONS),$(eval $(call sam_target,$(word 1,$(subst :, ,$(f))),$(word 2,$(subst :, ,$(f))))))

## tools: the emulators and runners the tests and the local stack need
tools:
	@infra/tools.sh

## test: everything CI runs; prints the statement coverage of shared/ and functions/
test: tools
	@TEST_TIMEOUT=$(TEST_TIMEOUT) infra/test.sh

## fuzz: every Fuzz* target for FUZZTIME (default 5s each)
fuzz:
	@infra/fuzz.sh

## lint: formatting, vet, and the SAM template
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cfn-lint template.yaml

## bench: throughput and memory, side by side with rclone (see README)
bench: tools
	$(GO) run ./tests/bench $(BENCH_FLAGS)
	$(GO) run ./tests/pipelinebench $(PIPELINE_BENCH_FLAGS)

## dev: the whole system on this machine, no cloud account
dev: tools build
	$(GO) run ./infra/local -ready-file $(BUILD_DIR)/dev-ready.json

## demo: upload a sample wedding archive to a running `make dev` and watch it reach PROTECTED
demo:
	$(GO) run ./infra/local/demo

clean:
	rm -rf $(BUILD_DIR) tests/artifacts
