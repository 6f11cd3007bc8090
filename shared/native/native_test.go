package native_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/native"
)

const (
	machine = "arn:aws:states:us-east-1:111122223333:stateMachine:secretsaga-rotation"
	secret  = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf"
	token   = "77777777-7777-4777-8777-777777777777"
)

var execArn = "arn:aws:states:us-east-1:111122223333:execution:secretsaga-rotation:native-" + token

// fakeSFN holds executions by ARN; each answers RUNNING for its first
// `running` DescribeExecution calls, then its status.
type fakeSFN struct {
	mu       sync.Mutex
	execs    map[string]*fakeExec
	starts   []sfn.StartExecutionInput
	startErr error
	descErr  error
	describe int
}

type fakeExec struct {
	input   string
	running int
	status  sfntypes.ExecutionStatus
	errName string
}

func (f *fakeSFN) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, *in)
	if f.startErr != nil {
		return nil, f.startErr
	}
	arn := native.ExecutionArn(aws.ToString(in.StateMachineArn), aws.ToString(in.Name))
	if x := f.execs[arn]; x != nil {
		// As Step Functions: the same name and input is idempotent while
		// the execution runs; anything else is ExecutionAlreadyExists.
		if x.input != aws.ToString(in.Input) || x.running == 0 {
			return nil, &sfntypes.ExecutionAlreadyExists{Message: aws.String("execution already exists: " + arn)}
		}
		return &sfn.StartExecutionOutput{ExecutionArn: &arn}, nil
	}
	if f.execs == nil {
		f.execs = map[string]*fakeExec{}
	}
	f.execs[arn] = &fakeExec{input: aws.ToString(in.Input), running: 1, status: sfntypes.ExecutionStatusSucceeded}
	return &sfn.StartExecutionOutput{ExecutionArn: &arn}, nil
}

func (f *fakeSFN) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describe++
	if f.descErr != nil {
		return nil, f.descErr
	}
	x := f.execs[aws.ToString(in.ExecutionArn)]
	if x == nil {
		return nil, &sfntypes.ExecutionDoesNotExist{Message: aws.String("does not exist")}
	}
	out := &sfn.DescribeExecutionOutput{ExecutionArn: in.ExecutionArn, Input: aws.String(x.input), Status: sfntypes.ExecutionStatusRunning}
	if x.running > 0 {
		x.running--
		return out, nil
	}
	out.Status = x.status
	if x.errName != "" {
		out.Error = aws.String(x.errName)
		out.Cause = aws.String(`{"errorMessage":"password=hunter2-should-never-cross","errorType":"` + x.errName + `"}`)
	}
	return out, nil
}

func input(secretID, tok string) string {
	b, _ := json.Marshal(map[string]string{"SecretId": secretID, "ClientRequestToken": tok})
	return string(b)
}

func service(f *fakeSFN) *native.Service {
	return &native.Service{
		SFN: f, StateMachineArn: machine,
		Sleep: func(context.Context, time.Duration) error { return nil },
	}
}

func ev(step string) native.Event {
	return native.Event{Step: step, SecretId: secret, ClientRequestToken: token}
}

func TestHandle(t *testing.T) {
	tests := []struct {
		name       string
		exec       *fakeExec // the execution for the token, before the call
		startErr   error
		descErr    error
		event      native.Event
		wantErr    string // faults name, "" for nil
		wantStarts int
		check      func(*testing.T, *fakeSFN)
	}{
		{name: "create starts the saga", event: ev("createSecret"), wantStarts: 1, check: func(t *testing.T, f *fakeSFN) {
			in := f.starts[0]
			if aws.ToString(in.Name) != "native-"+token || aws.ToString(in.StateMachineArn) != machine || aws.ToString(in.Input) != input(secret, token) {
				t.Errorf("start %s %s %s", aws.ToString(in.Name), aws.ToString(in.StateMachineArn), aws.ToString(in.Input))
			}
		}},
		{name: "create again joins the same execution", exec: &fakeExec{input: input(secret, token), running: 5}, event: ev("createSecret"), wantStarts: 1},
		{name: "create joins one that already failed: error", exec: &fakeExec{input: input(secret, token), status: sfntypes.ExecutionStatusFailed, errName: faults.NameTestFailed},
			event: ev("createSecret"), wantErr: faults.NameTestFailed, wantStarts: 1},
		{name: "create: the name is taken by another rotation's input", exec: &fakeExec{input: input(secret, "other-token"), running: 5},
			event: ev("createSecret"), wantErr: faults.NameConflict, wantStarts: 1},
		{name: "create: same token, other secret id spelling joins", exec: &fakeExec{input: input("app/db", token), running: 5},
			event: ev("createSecret"), wantStarts: 1},
		{name: "create: throttled", startErr: &sfntypes.ExecutionLimitExceeded{Message: aws.String("limit")}, event: ev("createSecret"), wantErr: faults.NameRetryable, wantStarts: 1},
		{name: "create: machine missing", startErr: &sfntypes.StateMachineDoesNotExist{Message: aws.String("no")}, event: ev("createSecret"), wantErr: faults.NameRetryable, wantStarts: 1},

		{name: "set while running", exec: &fakeExec{input: input(secret, token), running: 5}, event: ev("setSecret")},
		{name: "test while running", exec: &fakeExec{input: input(secret, token), running: 5}, event: ev("testSecret")},
		{name: "test after success", exec: &fakeExec{input: input(secret, token), status: sfntypes.ExecutionStatusSucceeded}, event: ev("testSecret")},
		{name: "set after failure", exec: &fakeExec{input: input(secret, token), status: sfntypes.ExecutionStatusFailed, errName: faults.NameInput},
			event: ev("setSecret"), wantErr: faults.NameInput},
		{name: "test after conflict", exec: &fakeExec{input: input(secret, token), status: sfntypes.ExecutionStatusFailed, errName: faults.NameConflict},
			event: ev("testSecret"), wantErr: faults.NameConflict},
		{name: "test after timeout", exec: &fakeExec{input: input(secret, token), status: sfntypes.ExecutionStatusTimedOut, errName: "States.Timeout"},
			event: ev("testSecret"), wantErr: faults.NameRetryable},
		{name: "set after abort", exec: &fakeExec{input: input(secret, token), status: sfntypes.ExecutionStatusAborted},
			event: ev("setSecret"), wantErr: faults.NameConflict},
		{name: "set: no execution", event: ev("setSecret"), wantErr: faults.NameRetryable},
		{name: "finish: no execution", event: ev("finishSecret"), wantErr: faults.NameRetryable},
		// RotateSecret with RotateImmediately=false: "Secrets Manager tests
		// the rotation configuration by running the testSecret step of the
		// Lambda rotation function. The test creates an AWSPENDING version
		// of the secret and then removes it." No createSecret came first.
		{name: "test: no execution is the configuration test", event: ev("testSecret")},
		{name: "test: no answer from Step Functions is no configuration test", descErr: errors.New("connection refused"), event: ev("testSecret"), wantErr: faults.NameRetryable},
		{name: "test: describe fails", exec: &fakeExec{input: input(secret, token)}, descErr: errors.New("connection reset"), event: ev("testSecret"), wantErr: faults.NameRetryable},

		{name: "finish waits for success", exec: &fakeExec{input: input(secret, token), running: 4, status: sfntypes.ExecutionStatusSucceeded},
			event: ev("finishSecret"), check: func(t *testing.T, f *fakeSFN) {
				if f.describe != 5 {
					t.Errorf("%d DescribeExecution calls, want 5", f.describe)
				}
			}},
		{name: "finish: rolled back", exec: &fakeExec{input: input(secret, token), running: 2, status: sfntypes.ExecutionStatusFailed, errName: faults.NameTestFailed},
			event: ev("finishSecret"), wantErr: faults.NameTestFailed},
		{name: "finish: compensation failed", exec: &fakeExec{input: input(secret, token), status: sfntypes.ExecutionStatusFailed, errName: faults.NameCompensationFailed},
			event: ev("finishSecret"), wantErr: faults.NameCompensationFailed},
		{name: "finish: failed with an unknown error", exec: &fakeExec{input: input(secret, token), status: sfntypes.ExecutionStatusFailed, errName: "States.Runtime"},
			event: ev("finishSecret"), wantErr: faults.NameRetryable},

		{name: "unknown step", event: ev("rotateSecret"), wantErr: faults.NameInput},
		{name: "no token", event: native.Event{Step: "createSecret", SecretId: secret}, wantErr: faults.NameInput},
		{name: "no secret", event: native.Event{Step: "finishSecret", ClientRequestToken: token}, wantErr: faults.NameInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSFN{startErr: tt.startErr, descErr: tt.descErr, execs: map[string]*fakeExec{}}
			if tt.exec != nil {
				f.execs[execArn] = tt.exec
			}
			err := service(f).Handle(context.Background(), tt.event)
			if got := faults.Name(err); got != tt.wantErr || (tt.wantErr != "" && err == nil) {
				t.Fatalf("err = %v (%s), want %q", err, got, tt.wantErr)
			}
			if err != nil {
				msg := err.Error()
				if strings.Contains(msg, "hunter2") {
					t.Errorf("the error carries the execution's cause: %s", msg)
				}
				if tt.event.SecretId != "" && !strings.Contains(msg, tt.event.SecretId) {
					t.Errorf("the error does not name the secret: %s", msg)
				}
				if tt.event.Step != "" && !strings.Contains(msg, tt.event.Step) {
					t.Errorf("the error does not name the step: %s", msg)
				}
			}
			if len(f.starts) != tt.wantStarts {
				t.Errorf("%d StartExecution calls, want %d", len(f.starts), tt.wantStarts)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

// TestFourSteps calls the steps in Secrets Manager's order.
func TestFourSteps(t *testing.T) {
	f := &fakeSFN{}
	s := service(f)
	for _, step := range []string{"createSecret", "setSecret", "testSecret", "finishSecret"} {
		if err := s.Handle(context.Background(), ev(step)); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	if len(f.starts) != 1 {
		t.Fatalf("%d starts", len(f.starts))
	}
}

// TestFinishBoundedByDeadline: finishSecret returns a RetryableError before
// the Lambda deadline while the execution still runs, and backs off.
func TestFinishBoundedByDeadline(t *testing.T) {
	f := &fakeSFN{execs: map[string]*fakeExec{execArn: {input: input(secret, token), running: 1 << 30}}}
	clock := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var sleeps []time.Duration
	s := &native.Service{
		SFN: f, StateMachineArn: machine, Margin: 3 * time.Second,
		PollInterval: time.Second, MaxPollInterval: 4 * time.Second,
		Now: func() time.Time { return clock },
		Sleep: func(_ context.Context, d time.Duration) error {
			sleeps = append(sleeps, d)
			clock = clock.Add(d)
			return nil
		},
	}
	ctx, cancel := context.WithDeadline(context.Background(), clock.Add(20*time.Second))
	defer cancel()
	err := s.Handle(ctx, ev("finishSecret"))
	if faults.Name(err) != faults.NameRetryable || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("err = %v", err)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second, 2 * time.Second}
	if len(sleeps) != len(want) {
		t.Fatalf("sleeps %v, want %v", sleeps, want)
	}
	for i := range want {
		if sleeps[i] != want[i] {
			t.Fatalf("sleeps %v, want %v", sleeps, want)
		}
	}
	if got := clock.Sub(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)); got != 17*time.Second {
		t.Errorf("returned after %v, want 17s (the deadline less the margin)", got)
	}
}

func TestExecutionName(t *testing.T) {
	if got := native.ExecutionName(token); got != "native-"+token {
		t.Errorf("%q", got)
	}
	if got := native.ExecutionName("a b/c" + strings.Repeat("x", 100)); len(got) != 80 || !strings.HasPrefix(got, "native-a_b_c") {
		t.Errorf("%q", got)
	}
}

// TestRotationToken: the RotationToken of recent Secrets Manager events is
// accepted and goes nowhere: not into the saga's input, not into a log line.
func TestRotationToken(t *testing.T) {
	const rotationToken = "opaque-rotation-token-4d1b0f"
	raw := `{"Step":"createSecret","SecretId":"` + secret + `","ClientRequestToken":"` + token + `","RotationToken":"` + rotationToken + `"}`
	var e native.Event
	if err := json.Unmarshal([]byte(raw), &e); err != nil || e.RotationToken != rotationToken {
		t.Fatalf("decode: %+v, %v", e, err)
	}
	f := &fakeSFN{}
	var logs strings.Builder
	s := service(f)
	s.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	for _, step := range []string{"createSecret", "setSecret", "testSecret", "finishSecret"} {
		e.Step = step
		if err := s.Handle(context.Background(), e); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	if len(f.starts) != 1 || aws.ToString(f.starts[0].Input) != input(secret, token) {
		t.Fatalf("starts %d, input %s", len(f.starts), aws.ToString(f.starts[0].Input))
	}
	if strings.Contains(logs.String(), rotationToken) {
		t.Errorf("the RotationToken was logged: %s", logs.String())
	}
}
