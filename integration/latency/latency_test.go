package latency

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// A DynamoDB endpoint that fails the first `fail` requests with code,
// then answers an empty GetItem.
func endpoint(t *testing.T, fail int, code string) string {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if int(n.Add(1)) <= fail {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#` + code + `","message":"no"}`))
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAPIOption(t *testing.T) {
	tests := []struct {
		name         string
		fail         int
		code         string
		wantErr      bool
		wantAttempts int
		wantErrors   map[string]int
	}{
		{name: "first attempt succeeds", wantAttempts: 1},
		{name: "throttled twice, then succeeds", fail: 2, code: "ThrottlingException", wantAttempts: 3,
			wantErrors: map[string]int{"ThrottlingException": 2}},
		{name: "not retryable", fail: 1, code: "ValidationException", wantErr: true, wantAttempts: 1,
			wantErrors: map[string]int{"ValidationException": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Recorder
			db := dynamodb.New(dynamodb.Options{
				Region:       "us-east-1",
				Credentials:  credentials.NewStaticCredentialsProvider("k", "s", ""),
				BaseEndpoint: aws.String(endpoint(t, tt.fail, tt.code)),
				Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
					o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
					o.RateLimiter = nopLimiter{}
				}),
				APIOptions: []func(*middleware.Stack) error{r.APIOption},
			})
			_, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String("t"),
				Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "x"}}})
			if (err != nil) != tt.wantErr {
				t.Fatalf("GetItem: %v", err)
			}
			ops := r.Ops()
			if len(ops) != 1 || ops[0].Name != "DynamoDB.GetItem" {
				t.Fatalf("ops %+v, want DynamoDB.GetItem alone", ops)
			}
			op := ops[0]
			if op.Calls != 1 || op.Attempts != tt.wantAttempts {
				t.Errorf("calls %d attempts %d, want 1 and %d", op.Calls, op.Attempts, tt.wantAttempts)
			}
			if len(op.Errors) != len(tt.wantErrors) {
				t.Errorf("errors %v, want %v", op.Errors, tt.wantErrors)
			}
			for code, n := range tt.wantErrors {
				if op.Errors[code] != n {
					t.Errorf("errors %v, want %v", op.Errors, tt.wantErrors)
				}
			}
			if op.MaxMs <= 0 || op.P50Ms > op.MaxMs {
				t.Errorf("durations p50 %v max %v", op.P50Ms, op.MaxMs)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	var r Recorder
	for i := 1; i <= 100; i++ {
		var err error
		if i%10 == 0 {
			err = context.DeadlineExceeded
		}
		r.Observe("Lambda.f", time.Duration(i)*time.Millisecond, err)
	}
	r.Observe("Lambda.g", time.Millisecond, errors.New("boom"))
	ops := r.Ops()
	if len(ops) != 2 || ops[0].Name != "Lambda.f" || ops[1].Name != "Lambda.g" {
		t.Fatalf("ops %+v", ops)
	}
	f := ops[0]
	if f.Calls != 100 || f.P50Ms != 50 || f.P90Ms != 90 || f.P99Ms != 99 || f.MaxMs != 100 || f.Attempts != 0 {
		t.Errorf("Lambda.f %+v", f)
	}
	if f.Seconds < 5.04 || f.Seconds > 5.06 {
		t.Errorf("Lambda.f seconds %v, want 5.05", f.Seconds)
	}
	if f.Errors["canceled"] != 10 || ops[1].Errors["other"] != 1 {
		t.Errorf("errors %v %v", f.Errors, ops[1].Errors)
	}
	if m, n := r.Mean("Lambda.f", time.Now().Add(-time.Minute), time.Now().Add(time.Second)); n != 100 || m != 50500*time.Microsecond {
		t.Errorf("mean %v of %d, want 50.5ms of 100", m, n)
	}
	if _, n := r.Mean("Lambda.f", time.Now().Add(time.Second), time.Now().Add(time.Minute)); n != 0 {
		t.Errorf("%d calls ended in the future", n)
	}
	r.Reset()
	if len(r.Ops()) != 0 {
		t.Error("Reset kept ops")
	}
}

// The default retryer's client-side rate limiter would refuse retries
// after a few failures: the test counts attempts, not the limiter.
type nopLimiter struct{}

func (nopLimiter) GetToken(context.Context, uint) (func() error, error) {
	return func() error { return nil }, nil
}
func (nopLimiter) AddTokens(uint) error { return nil }
