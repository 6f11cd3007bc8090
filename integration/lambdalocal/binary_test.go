//go:build integration

package lambdalocal

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestBinary runs one function as its built binary behind the Lambda
// Runtime API (AWS's runtime interface emulator) through the Invoke
// endpoint: results, the errorType of a named error (what Step Functions'
// Retry and Catch match), a timeout, a crash, warm reuse, one process per
// concurrent invocation, and Close ending every process.
func TestBinary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	start := time.Now()
	rie, err := BuildRIE(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := BuildBootstraps(ctx, dir, "github.com/secretsaga/secretsaga/integration/lambdalocal/testdata/fn"); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the RIE and the function in %v", time.Since(start).Round(time.Millisecond))

	s := New()
	var logs syncBuffer
	const timeout = 2 * time.Second
	s.RegisterBinary("fn", Binary{Bootstrap: filepath.Join(dir, "fn"), RIE: rie, MemoryMB: 256, Output: &logs,
		Env: []string{"LEDGER_TABLE=ledger-x", "AWS_REGION=us-east-1"}}, timeout)
	url, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = s.Close()
		}
	}()

	type res struct {
		Value, Home, FunctionName, RequestID string
		DeadlineMs                           int64
		Pid                                  int
	}
	echo := func(payload string) (res, time.Duration) {
		t.Helper()
		t0 := time.Now()
		r := invoke(t, url, "fn", payload)
		d := time.Since(t0)
		if r.status != 200 || r.header.Get("X-Amz-Function-Error") != "" {
			t.Fatalf("invoke %s: %d %v %s", payload, r.status, r.header, r.body)
		}
		var out res
		if err := json.Unmarshal([]byte(r.body), &out); err != nil {
			t.Fatalf("result %q: %v", r.body, err)
		}
		return out, d
	}

	first, cold := echo(`{"Op":"echo","Env":"LEDGER_TABLE"}`)
	if first.Value != "ledger-x" || first.Home != "" || first.FunctionName != "fn" || first.RequestID == "" {
		t.Errorf("the function saw %+v; want only the given environment, its name and a request id", first)
	}
	if first.DeadlineMs <= 0 || first.DeadlineMs > timeout.Milliseconds() {
		t.Errorf("deadline in %d ms, want within the %v timeout", first.DeadlineMs, timeout)
	}
	warm, warmD := echo(`{"Op":"echo"}`)
	if warm.Pid != first.Pid || s.Started("fn") != 1 {
		t.Errorf("a second invocation ran in process %d (first %d), %d started; want the warm one reused", warm.Pid, first.Pid, s.Started("fn"))
	}
	t.Logf("cold invocation %v, warm %v", cold.Round(time.Millisecond), warmD.Round(time.Millisecond))

	// A named error keeps its Go type name as errorType.
	r := invoke(t, url, "fn", `{"Op":"conflict"}`)
	var fe errorResponse
	_ = json.Unmarshal([]byte(r.body), &fe)
	if r.status != 200 || r.header.Get("X-Amz-Function-Error") != "Unhandled" || fe.ErrorType != "ConflictError" || !strings.Contains(fe.ErrorMessage, "another rotation holds the lease") {
		t.Errorf("conflict: %d %v %s", r.status, r.header.Get("X-Amz-Function-Error"), r.body)
	}
	if again, _ := echo(`{"Op":"echo"}`); again.Pid != first.Pid {
		t.Errorf("a function error replaced the process")
	}

	// Concurrent invocations each get a process.
	var wg sync.WaitGroup
	pids := make([]int, 2)
	for i := range pids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, _ := echo(`{"Op":"echo","SleepMs":700}`)
			pids[i] = out.Pid
		}()
	}
	wg.Wait()
	if pids[0] == pids[1] || s.Started("fn") != 2 {
		t.Errorf("concurrent invocations ran in %v, %d started; want two processes", pids, s.Started("fn"))
	}

	// Past the timeout: Sandbox.Timedout, and the process is not reused.
	t0 := time.Now()
	r = invoke(t, url, "fn", `{"Op":"echo","SleepMs":10000}`)
	took := time.Since(t0)
	_ = json.Unmarshal([]byte(r.body), &fe)
	if fe.ErrorType != "Sandbox.Timedout" || r.header.Get("X-Amz-Function-Error") != "Unhandled" || took > timeout+1500*time.Millisecond {
		t.Errorf("a hung invocation: %v after %v, want Sandbox.Timedout after %v", r.body, took, timeout)
	}
	// A crash: the runtime's exit error, and the next invocation works.
	r = invoke(t, url, "fn", `{"Op":"exit"}`)
	_ = json.Unmarshal([]byte(r.body), &fe)
	if r.header.Get("X-Amz-Function-Error") != "Unhandled" || !strings.HasPrefix(fe.ErrorType, "Runtime.") {
		t.Errorf("a crash: %d %v %s", r.status, r.header, r.body)
	}
	after, _ := echo(`{"Op":"echo"}`)
	if after.Pid == 0 {
		t.Error("no answer after a crash")
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	for _, pid := range append(pids, first.Pid, after.Pid) {
		for i := 0; syscall.Kill(pid, 0) == nil; i++ {
			if i == 100 {
				t.Errorf("process %d still runs after Close", pid)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !strings.Contains(logs.String(), "START RequestId") {
		t.Errorf("the runtime's output did not reach Output: %q", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
