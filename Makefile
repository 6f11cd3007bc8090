# secretsaga: the two commands a person needs are `make demo` and `make test`.
# Every target installs what it needs first (idempotently; instant when present).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
FUNCTIONS := $(notdir $(wildcard functions/*))
LAMBDA    := build/lambda
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: all deps build demo bench soak soak-ephemeral test unit integration lint asl fuzz-short fuzz mutation infra-test synth clean

all: build

## deps: install the JDK, PostgreSQL and npm packages the stand-ins need (skips what is present)
deps:
	@bash integration/install-deps.sh

## build: one arm64 `bootstrap` per Lambda function under build/lambda/<name>/ (GCFLAGS: extra -gcflags,
## appended after LAMBDA_GCFLAGS; README "Binary sizes")
# No inlining outside the hot paths: the functions wait on the network, not the CPU, and
# without it every function fits 10 MB with tracing. The packages in INLINED keep it: the
# crypto that SCRAM's PBKDF2 (SHA-256, HMAC) and TLS handshakes (big numbers, P-256,
# X25519) spend their time in, so a SCRAM verifier and a handshake cost what they do with
# Go's defaults (2.5 ms instead of 0.7 for a verifier with no inlining at all); and
# OpenTelemetry, whose semantic conventions' thousands of attribute variables are then laid
# out by the compiler instead of by init code (−0.26 MB). README "Binary sizes".
INLINED := crypto/internal/fips140 crypto/internal/fips140/subtle crypto/internal/fips140deps/... \
  crypto/internal/fips140/sha256 crypto/internal/fips140/hmac crypto/internal/fips140/pbkdf2 \
  crypto/internal/fips140only crypto/sha256 crypto/hmac crypto/pbkdf2 crypto/subtle \
  crypto/internal/fips140/bigmod crypto/internal/fips140/edwards25519/... crypto/internal/fips140/nistec/... \
  go.opentelemetry.io/...
LAMBDA_GCFLAGS ?= -gcflags=all=-l $(foreach p,$(INLINED),-gcflags=$(p)=)
# The functions are built with OpenTelemetry tracing to X-Ray (TRACING=otel, the `otel` build
# tag; README "Tracing"), which exports only where AWS_XRAY_DAEMON_ADDRESS is set (Lambda's
# active tracing) or SECRETSAGA_TRACES asks. TRACING=off builds them without: 0.62-0.75 MB
# smaller each.
TRACING ?= otel
ifeq ($(filter otel off,$(TRACING)),)
$(error TRACING=$(TRACING): want TRACING=otel (tracing built in, the default) or TRACING=off)
endif
comma := ,
build:
	@for f in $(FUNCTIONS); do \
	  GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc$(if $(filter otel,$(TRACING)),$(comma)otel) -trimpath $(LAMBDA_GCFLAGS) $(if $(GCFLAGS),-gcflags='$(GCFLAGS)') -ldflags='-s -w' \
	    -o $(LAMBDA)/$$f/bootstrap ./functions/$$f; \
	done
	@ls -l $(LAMBDA)/*/bootstrap | awk '{printf "%-40s %6.1f MB\n", $$9, $$5/1048576}'

## demo: start the stand-ins and run two rotations through the state machine (one rolls back)
demo: deps
	$(GO) run ./integration/demo

## bench: latency, API calls, cost, artifact sizes, a 1,000-secret fleet under the write quota, Go benchmarks
## (prints the report; JSON in results/bench.json)
bench: deps build
	$(GO) run ./integration/bench $(BENCH_FLAGS)

## soak: what applications see while secrets rotate: workers query PostgreSQL, MariaDB and Redis through the
## client library and through a naive baseline during 200 rotations per engine × strategy (successes,
## rollbacks, injected faults); prints a table, JSON in results/soak.json. SOAK_FLAGS: -rotations -workers -duration
soak: deps
	$(GO) run ./integration/soak $(SOAK_FLAGS)
	@$(MAKE) --no-print-directory soak-ephemeral

## soak-ephemeral: EPHEMERAL_SOAK (default 1,000) short-lived logins with TTLs of 5-10 s over PostgreSQL,
## MariaDB and Redis while 3% of the calls of issue, revoke and the sweeper fail (reads before, writes after
## their effect): no login may outlive its expiry by more than one sweeper period (5 s here); the figures
## are in results/soak-ephemeral.txt (README "Short-lived database logins")
EPHEMERAL_SOAK ?= 1000
soak-ephemeral: deps
	@mkdir -p results
	@SECRETSAGA_EPHEMERAL_SOAK=$(EPHEMERAL_SOAK) $(GO) test -tags integration -count=1 -timeout 30m -v -run '^TestEphemeralSoak$$' \
	  ./integration/ > results/soak-ephemeral.txt 2>&1; rc=$$?; \
	  grep -E 'ephemeral soak|journaled leases|revocation after|^(ok|FAIL|--- )' results/soak-ephemeral.txt; exit $$rc

## test: everything CI runs
test: deps lint asl unit fuzz-short integration infra-lint infra-test synth

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './integration/node_modules/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) vet -tags otel ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags integration ./...
	$(GO) run $(STATICCHECK) -tags otel ./...

## asl: validate the state machine definitions with asl-validator
asl:
	@for f in statemachines/*.asl.json; do integration/node_modules/.bin/asl-validator --json-path $$f; done

unit:
	$(GO) test -race -shuffle=on -count=1 ./...
	$(GO) test -race -shuffle=on -count=1 -tags otel ./shared/tracing/ ./shared/awsenv/

integration: build
	@mkdir -p results
	SECRETSAGA_REPORT=$(CURDIR)/results/integration-report.txt \
	  $(GO) test -race -shuffle=on -count=1 -tags integration -timeout 45m ./...
	@echo; echo "== reliability harness summary (results/integration-report.txt) =="; cat results/integration-report.txt

FUZZTIME ?= 10s
fuzz-short:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./shared/secret
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./shared/ledger
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./shared/access

## fuzz: longer fuzzing of the parsers of secret JSON and ledger items
fuzz:
	$(MAKE) fuzz-short FUZZTIME=5m

## mutation: mutation testing (gremlins) of shared/secretstore, shared/ledger and shared/rotation, one
## package at a time with one worker; not part of `make test` (slow: see README "Mutation testing" for the
## runtime). Unit tests only (the ledger's run over an in-memory DynamoDB). Reports in results/.
GREMLINS       := github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
# The timeout (the coverage run's time × the coefficient) includes building the mutant; a mutant
# that makes a retry loop endless waits for it. --test-cpu is left out: gremlins v0.6.0 passes it
# as one argument.
MUTATION_FLAGS ?= --workers 1 --timeout-coefficient 10 --invert-logical
mutation:
	@mkdir -p results
	@for p in secretstore ledger rotation; do \
	  echo "== gremlins ./shared/$$p"; \
	  $(GO) run $(GREMLINS) unleash $(MUTATION_FLAGS) --output results/gremlins-$$p.json ./shared/$$p \
	    | tee results/gremlins-$$p.txt | { grep -E 'LIVED|TIMED OUT|Killed:|Timed out:|efficacy|coverage' || true; }; \
	done

clean:
	rm -rf build cdk.out

# The CDK app (its own Go module under infra/): infra-deps, infra-test, infra-lint, synth.
include infra/infra.mk
