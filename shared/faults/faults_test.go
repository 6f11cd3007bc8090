package faults

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/smithy-go"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), NameRetryable},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), NameRetryable},
		{"throttling", &smithy.GenericAPIError{Code: "ThrottlingException"}, NameRetryable},
		{"ddb throughput", &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException"}, NameRetryable},
		{"not found", &smithy.GenericAPIError{Code: "ResourceNotFoundException"}, NameInput},
		{"deleted", &smithy.GenericAPIError{Code: "InvalidRequestException"}, NameInput},
		{"denied", &smithy.GenericAPIError{Code: "AccessDeniedException"}, NameInput},
		{"unknown", errors.New("boom"), NameRetryable},
		{"wrapped conflict", fmt.Errorf("outer: %w", &ConflictError{Detail{Reason: "held"}}), NameConflict},
		{"joined", errors.Join(errors.New("a"), &TestFailedError{}), NameTestFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err, "app/db", "set")
			// errorType as aws-lambda-go computes it: the type name without the pointer.
			typ := reflect.TypeOf(got)
			if typ.Kind() == reflect.Pointer {
				typ = typ.Elem()
			}
			if typ.Name() != tt.want || Name(got) != tt.want {
				t.Fatalf("Classify(%v) = %s (%T), want %s", tt.err, typ.Name(), got, tt.want)
			}
			if !errors.Is(got, tt.err) && Name(tt.err) == "" {
				t.Fatalf("cause lost: %v does not wrap %v", got, tt.err)
			}
		})
	}
	if Classify(nil, "s", "x") != nil {
		t.Fatal("nil must stay nil")
	}
}

func TestMessageNamesSecretAndStep(t *testing.T) {
	err := Classify(errors.New("dial tcp: refused"), "app/db", "test")
	for _, want := range []string{`"app/db"`, "step test", NameRetryable} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q lacks %q", err.Error(), want)
		}
	}
}

func TestNamesMatchTypes(t *testing.T) {
	for i, f := range []error{&RetryableError{}, &ConflictError{}, &InputError{}, &TestFailedError{}, &CompensationFailedError{}} {
		if got := reflect.TypeOf(f).Elem().Name(); got != Names[i] {
			t.Fatalf("Names[%d] = %s, type is %s", i, Names[i], got)
		}
	}
}
