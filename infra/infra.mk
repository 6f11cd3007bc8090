# infra/infra.mk — the CDK app's targets; the root Makefile includes this file
# (paths are relative to the repository root).
#
#   make infra-deps   the pinned CDK CLI in infra/node_modules (npm ci, only when needed)
#   make infra-test   go test of the CDK app (assertions on the synthesized template)
#   make infra-lint   gofmt and go vet of the infra module
#   make synth        cdk synth into cdk.out/ (needs `make build` first)

GO ?= go
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

INFRA_DIR   := infra
INFRA_STAMP := $(INFRA_DIR)/node_modules/.infra-deps.stamp
CDK         := $(INFRA_DIR)/node_modules/.bin/cdk
CDK_FLAGS   ?= --no-version-reporting --no-notices
INFRA_FUNCTIONS := acquirelease createsecret setsecret testsecret finishsecret verify releaselease compensate listsecrets fleetsummary fleetreport nativerotation repair

.PHONY: infra-deps infra-test infra-lint synth

## infra-deps: install the pinned CDK CLI (npm ci in infra/; skipped when up to date)
infra-deps: $(INFRA_STAMP)
	@:

# The stamp lives in node_modules, so deleting node_modules reinstalls; a
# newer package.json or lockfile reinstalls too.
$(INFRA_STAMP): $(INFRA_DIR)/package.json $(INFRA_DIR)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "infra-deps: npm not found (Node.js 20+ and npm are required)" >&2; exit 1; }
	@cd $(INFRA_DIR) && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@test -x $(CDK) || { echo "infra-deps: $(CDK) missing after npm ci" >&2; exit 1; }
	@touch $@
	@echo "cdk cli: installed ($$($(CDK) --version 2>/dev/null | cut -d' ' -f1))"

## infra-test: unit tests of the CDK app (offline; dummy bootstraps, no `make build` needed)
infra-test:
	cd $(INFRA_DIR) && $(GO) test -count=1 ./...

## infra-lint: gofmt and go vet of the infra module (node_modules is ignored by go.mod)
infra-lint:
	@out=$$(cd $(INFRA_DIR) && gofmt -l $$(find . -name '*.go' -not -path './node_modules/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed in $(INFRA_DIR):"; echo "$$out"; exit 1; fi
	cd $(INFRA_DIR) && $(GO) vet ./...

## synth: synthesize the SecretSaga stack into cdk.out/ (run `make build` first); CDK_CONTEXT="-c key=value ..."
synth: infra-deps
	@for f in $(INFRA_FUNCTIONS); do \
	  test -f build/lambda/$$f/bootstrap || { echo "synth: build/lambda/$$f/bootstrap missing; run \`make build\` first" >&2; exit 1; }; \
	done
	@start=$$(date +%s%N); \
	  $(CDK) synth $(CDK_FLAGS) -q $(CDK_CONTEXT); \
	  end=$$(date +%s%N); \
	  echo "synth: cdk.out/ in $$(( (end - start) / 1000000 )) ms"
