package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

const secretName = "app/db"

// Passwords the tests put in secrets; none may appear in an error or a log.
const (
	pwOld     = "Old-pw-3b9f1e77"
	pwCur     = "Cur-pw-7a1c4d20"
	pwPending = "Pend-pw-5e2b8c91"
)

func val(engine, user, pw string) *string {
	s := fmt.Sprintf(`{"engine":%q,"host":"db.internal","port":5432,"username":%q,"password":%q,"dbname":"orders"}`, engine, user, pw)
	return &s
}

func str(s string) *string { return &s }

// testCache returns a cache over f on a settable clock, logging to buf.
func testCache(f *fakeSM, buf *bytes.Buffer, opts ...Option) (*Cache, *clock) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if buf != nil {
		opts = append([]Option{WithLogger(slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	}
	c := New(f, opts...)
	c.now = clk.now
	return c, clk
}

// assertNoValue fails if any test password appears in s.
func assertNoValue(t *testing.T, what, s string) {
	t.Helper()
	for _, pw := range []string{pwOld, pwCur, pwPending} {
		if strings.Contains(s, pw) {
			t.Fatalf("%s holds a password: %s", what, s)
		}
	}
}

func TestTTL(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      []Option
		after     time.Duration
		wantCalls int
	}{
		{"within the default TTL", nil, DefaultTTL - time.Second, 1},
		{"past the default TTL", nil, DefaultTTL, 2},
		{"within a set TTL", []Option{WithTTL(time.Minute)}, 59 * time.Second, 1},
		{"past a set TTL", []Option{WithTTL(time.Minute)}, time.Minute, 2},
		{"a zero TTL keeps the default", []Option{WithTTL(0)}, time.Minute, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(secretName)
			f.put("v1", val("postgres", "app", pwCur), StageCurrent)
			c, clk := testCache(f, nil, tc.opts...)
			ctx := context.Background()
			if _, err := c.Get(ctx, secretName); err != nil {
				t.Fatal(err)
			}
			clk.add(tc.after)
			cr, err := c.Get(ctx, secretName)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.total(); got != tc.wantCalls {
				t.Fatalf("GetSecretValue calls = %d, want %d", got, tc.wantCalls)
			}
			if got := c.Stats().GetSecretValueCalls; got != uint64(tc.wantCalls) {
				t.Fatalf("Stats().GetSecretValueCalls = %d, want %d", got, tc.wantCalls)
			}
			if cr.VersionID != "v1" || cr.Stage != StageCurrent || !cr.Password.Equal(cr.Password) || cr.Username != "app" || cr.Port != 5432 {
				t.Fatalf("credential = %v", cr)
			}
		})
	}
}

// TestSingleflight: N goroutines asking at once make one call per stage.
func TestSingleflight(t *testing.T) {
	for _, tc := range []struct {
		name      string
		call      func(*Cache) error
		wantCalls int
	}{
		{"Get: one AWSCURRENT read", func(c *Cache) error { _, err := c.Get(context.Background(), secretName); return err }, 1},
		{"Candidates: one read of each stage", func(c *Cache) error {
			_, err := c.Candidates(context.Background(), secretName)
			return err
		}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(secretName)
			f.put("v0", val("postgres", "app", pwOld), StagePrevious)
			f.put("v1", val("postgres", "app", pwCur), StageCurrent)
			f.put("v2", val("postgres", "app", pwPending), StagePending)
			f.gate = make(chan struct{})
			c, _ := testCache(f, nil)
			const n = 64
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				wg.Go(func() { errs <- tc.call(c) })
			}
			// Let the goroutines pile up on the one read before it returns.
			deadline := time.Now().Add(5 * time.Second)
			for f.total() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			close(f.gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := f.total(); got != tc.wantCalls {
				t.Fatalf("%d goroutines made %d GetSecretValue calls, want %d", n, got, tc.wantCalls)
			}
			// And again at once: the refresh interval has not passed.
			if err := tc.call(c); err != nil {
				t.Fatal(err)
			}
			if got := f.total(); got != tc.wantCalls {
				t.Fatalf("a call right after made %d calls in all, want %d", got, tc.wantCalls)
			}
		})
	}
}

// TestCandidatesDuringARead: a caller arriving while AWSPENDING is being
// read waits for it instead of taking a list without it (the PostgreSQL
// herd test found this).
func TestCandidatesDuringARead(t *testing.T) {
	f := newFake(secretName)
	f.put("v1", val("postgres", "app", pwCur), StageCurrent)
	f.put("v2", val("postgres", "app", pwPending), StagePending)
	f.gate, f.gateOnly = make(chan struct{}), StagePending
	c, _ := testCache(f, nil)
	first := make(chan []Credential)
	go func() {
		got, _ := c.Candidates(context.Background(), secretName)
		first <- got
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		f.mu.Lock()
		n := f.calls[StagePending]
		f.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
	}
	second := make(chan []Credential)
	go func() {
		got, _ := c.Candidates(context.Background(), secretName)
		second <- got
	}()
	time.Sleep(20 * time.Millisecond)
	close(f.gate)
	for _, ch := range []chan []Credential{first, second} {
		if got := <-ch; len(got) != 2 {
			t.Fatalf("candidates = %v, want AWSCURRENT and AWSPENDING", got)
		}
	}
}

// TestCandidatesRateLimited: a herd of refused logins spread over time
// reads the secret once per refresh interval.
func TestCandidatesRateLimited(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		reads    int // of the 200 calls over two seconds
	}{
		{time.Second, 2},            // at 0s and 1s
		{500 * time.Millisecond, 4}, // at 0, 0.5, 1 and 1.5s
		{0, 200},                    // every call reads
	} {
		t.Run(tc.interval.String(), func(t *testing.T) {
			f := newFake(secretName)
			f.put("v1", val("postgres", "app", pwCur), StageCurrent)
			c, clk := testCache(f, nil, WithRefreshInterval(tc.interval))
			ctx := context.Background()
			for range 200 { // 200 calls over two seconds
				if _, err := c.Candidates(ctx, secretName); err != nil {
					t.Fatal(err)
				}
				clk.add(10 * time.Millisecond)
			}
			// Each read is of AWSCURRENT, AWSPENDING (none) and AWSPREVIOUS
			// (none).
			if got := f.total(); got != 3*tc.reads {
				t.Fatalf("200 calls over 2s made %d GetSecretValue calls, want %d (%d reads)", got, 3*tc.reads, tc.reads)
			}
		})
	}
}

func TestStaleOnError(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      []Option
		breakIt   func(*fakeSM)
		after     time.Duration
		wantErr   error // nil: the stale value is served
		wantStale uint64
	}{
		{"transient error within max staleness", nil, func(f *fakeSM) { f.err = errThrottled }, DefaultTTL + time.Minute, nil, 1},
		{"transient error past max staleness", []Option{WithMaxStale(time.Minute)}, func(f *fakeSM) { f.err = errThrottled }, DefaultTTL + time.Minute, ErrUnavailable, 0},
		{"no staleness allowed", []Option{WithMaxStale(0)}, func(f *fakeSM) { f.err = errThrottled }, DefaultTTL, ErrUnavailable, 0},
		{"deleted: never served stale", nil, func(f *fakeSM) { f.deleted = true }, DefaultTTL, ErrDeleted, 0},
		{"now malformed: never served stale", nil, func(f *fakeSM) { f.put("v2", str("not json "+pwCur), StageCurrent) }, DefaultTTL, ErrInvalidValue, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(secretName)
			f.put("v1", val("postgres", "app", pwCur), StageCurrent)
			var buf bytes.Buffer
			c, clk := testCache(f, &buf, tc.opts...)
			ctx := context.Background()
			if _, err := c.Get(ctx, secretName); err != nil {
				t.Fatal(err)
			}
			tc.breakIt(f)
			clk.add(tc.after)
			cr, err := c.Get(ctx, secretName)
			if tc.wantErr == nil {
				if err != nil || cr.VersionID != "v1" {
					t.Fatalf("got %v, %v; want the stale v1", cr, err)
				}
			} else if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got := c.Stats().StaleServed; got != tc.wantStale {
				t.Fatalf("StaleServed = %d, want %d", got, tc.wantStale)
			}
			if err != nil {
				assertNoValue(t, "error", err.Error())
			}
			assertNoValue(t, "log", buf.String())
			// A failed read is not retried at once.
			calls := f.total()
			_, _ = c.Get(ctx, secretName)
			if tc.wantErr == nil || errors.Is(tc.wantErr, ErrUnavailable) {
				if got := f.total(); got != calls {
					t.Fatalf("a Get right after a failed read made %d more calls", got-calls)
				}
			}
		})
	}
}

func TestCandidates(t *testing.T) {
	type ver struct {
		id     string
		value  *string
		stages []string
	}
	pg := func(user, pw string) *string { return val("postgres", user, pw) }
	for _, tc := range []struct {
		name   string
		vers   []ver
		opts   []Option
		want   []string // version ids, in order
		stages []string // the stage each was read by
	}{
		{"current, pending, previous", []ver{{"v0", pg("app", pwOld), []string{StagePrevious}}, {"v1", pg("app", pwCur), []string{StageCurrent}}, {"v2", pg("app", pwPending), []string{StagePending}}},
			nil, []string{"v1", "v2", "v0"}, []string{StageCurrent, StagePending, StagePrevious}},
		{"no rotation running", []ver{{"v0", pg("app", pwOld), []string{StagePrevious}}, {"v1", pg("app", pwCur), []string{StageCurrent}}},
			nil, []string{"v1", "v0"}, []string{StageCurrent, StagePrevious}},
		{"a secret never rotated", []ver{{"v1", pg("app", pwCur), []string{StageCurrent}}},
			nil, []string{"v1"}, []string{StageCurrent}},
		{"same credential twice is tried once", []ver{{"v0", pg("app", pwCur), []string{StagePrevious}}, {"v1", pg("app", pwCur), []string{StageCurrent}}, {"v2", pg("app", pwPending), []string{StagePending}}},
			nil, []string{"v1", "v2"}, []string{StageCurrent, StagePending}},
		{"pending on the current version (finish moved it)", []ver{{"v0", pg("app", pwOld), []string{StagePrevious}}, {"v1", pg("app", pwCur), []string{StageCurrent, StagePending}}},
			nil, []string{"v1", "v0"}, []string{StageCurrent, StagePrevious}},
		{"alternating users: same password, other user", []ver{{"v0", pg("app_clone", pwCur), []string{StagePrevious}}, {"v1", pg("app", pwCur), []string{StageCurrent}}},
			nil, []string{"v1", "v0"}, []string{StageCurrent, StagePrevious}},
		{"empty pending (RotateSecret before create) is skipped", []ver{{"v1", pg("app", pwCur), []string{StageCurrent}}, {"v2", nil, []string{StagePending}}},
			nil, []string{"v1"}, []string{StageCurrent}},
		{"malformed pending is skipped", []ver{{"v1", pg("app", pwCur), []string{StageCurrent}}, {"v2", str(`{"password":"` + pwPending + `"`), []string{StagePending}}},
			nil, []string{"v1"}, []string{StageCurrent}},
		{"bounded by max attempts", []ver{{"v0", pg("app", pwOld), []string{StagePrevious}}, {"v1", pg("app", pwCur), []string{StageCurrent}}, {"v2", pg("app", pwPending), []string{StagePending}}},
			[]Option{WithMaxAttempts(2)}, []string{"v1", "v2"}, []string{StageCurrent, StagePending}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(secretName)
			for _, v := range tc.vers {
				f.put(v.id, v.value, v.stages...)
			}
			var buf bytes.Buffer
			c, _ := testCache(f, &buf, tc.opts...)
			got, err := c.Candidates(context.Background(), secretName)
			if err != nil {
				t.Fatal(err)
			}
			var ids, stages []string
			for _, cr := range got {
				ids = append(ids, cr.VersionID)
				stages = append(stages, cr.Stage)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) || fmt.Sprint(stages) != fmt.Sprint(tc.stages) {
				t.Fatalf("candidates = %v by %v, want %v by %v", ids, stages, tc.want, tc.stages)
			}
			assertNoValue(t, "log", buf.String())
			assertNoValue(t, "candidates", fmt.Sprintf("%v %+v %#v", got, got, got))
		})
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(*fakeSM)
		id     string
		want   error
		reason string // a piece of the message
	}{
		{"missing secret", func(*fakeSM) {}, "other/secret", ErrNotFound, `secret "other/secret"`},
		{"no AWSCURRENT value", func(f *fakeSM) { f.put("v1", nil, StageCurrent) }, secretName, ErrNotFound, "AWSCURRENT"},
		{"deleted", func(f *fakeSM) { f.put("v1", val("postgres", "app", pwCur), StageCurrent); f.deleted = true }, secretName, ErrDeleted, "RestoreSecret"},
		{"not JSON", func(f *fakeSM) { f.put("v1", str(pwCur), StageCurrent) }, secretName, ErrInvalidValue, "not a JSON object"},
		{"JSON but broken", func(f *fakeSM) { f.put("v1", str(`{"password":"`+pwCur+`",`), StageCurrent) }, secretName, ErrInvalidValue, "not valid JSON"},
		{"password missing", func(f *fakeSM) {
			f.put("v1", str(`{"engine":"postgres","host":"h","username":"u"}`), StageCurrent)
		}, secretName, ErrInvalidValue, `"password"`},
		{"host missing", func(f *fakeSM) {
			f.put("v1", str(`{"engine":"postgres","username":"u","password":"`+pwCur+`"}`), StageCurrent)
		}, secretName, ErrInvalidValue, `"host"`},
		{"port of the wrong type", func(f *fakeSM) {
			f.put("v1", str(`{"engine":"postgres","host":"h","port":true,"username":"u","password":"`+pwCur+`"}`), StageCurrent)
		}, secretName, ErrInvalidValue, `"port"`},
		{"Secrets Manager unreachable", func(f *fakeSM) { f.err = errThrottled }, secretName, ErrUnavailable, "Rate exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(secretName)
			tc.setup(f)
			var buf bytes.Buffer
			c, _ := testCache(f, &buf)
			for _, call := range []func() error{
				func() error { _, err := c.Get(context.Background(), tc.id); return err },
				func() error { _, err := c.Candidates(context.Background(), tc.id); return err },
				func() error {
					_, err := Login(context.Background(), c, tc.id, testEngine, func(context.Context, Credential) (int, error) { return 1, nil })
					return err
				},
			} {
				err := call()
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				var ce *Error
				if !errors.As(err, &ce) || ce.SecretID != tc.id {
					t.Fatalf("err = %#v, want an *Error naming %q", err, tc.id)
				}
				if !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), tc.id) {
					t.Fatalf("err = %q, want it to say %q and name the secret", err, tc.reason)
				}
				assertNoValue(t, "error", err.Error())
			}
			assertNoValue(t, "log", buf.String())
		})
	}
}

func TestWrongEngine(t *testing.T) {
	f := newFake(secretName)
	f.put("v1", val("mysql", "app", pwCur), StageCurrent)
	c, _ := testCache(f, nil)
	called := false
	_, err := Login(context.Background(), c, secretName, testEngine, func(context.Context, Credential) (int, error) { called = true; return 1, nil })
	if !errors.Is(err, ErrWrongEngine) || called {
		t.Fatalf("err = %v, connect called = %v; want ErrWrongEngine before any login", err, called)
	}
	if !strings.Contains(err.Error(), `"mysql"`) || !strings.Contains(err.Error(), secretName) {
		t.Fatalf("err = %q, want it to name the engine and the secret", err)
	}
	assertNoValue(t, "error", err.Error())
}

// TestNeverPanics: nil and empty arguments give errors.
func TestNeverPanics(t *testing.T) {
	ctx := context.Background()
	var nilCache *Cache
	if _, err := nilCache.Get(ctx, secretName); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("nil cache Get: %v", err)
	}
	if _, err := Login(ctx, nilCache, secretName, testEngine, func(context.Context, Credential) (int, error) { return 0, nil }); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("nil cache Login: %v", err)
	}
	noAPI := New(nil, nil, WithLogger(nil))
	if _, err := noAPI.Get(ctx, secretName); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("nil API Get: %v", err)
	}
	if _, err := noAPI.Candidates(ctx, secretName); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("nil API Candidates: %v", err)
	}
	f := newFake(secretName)
	f.put("v1", val("postgres", "app", pwCur), StageCurrent)
	c, _ := testCache(f, nil)
	if _, err := Login(ctx, c, secretName, Engine{Names: []string{"postgres"}}, func(context.Context, Credential) (int, error) { return 0, errors.New("refused") }); err == nil {
		t.Fatal("Login without IsAuthFailure: want the connect error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	f.gate = make(chan struct{})
	defer close(f.gate)
	if _, err := New(f).Get(cctx, secretName); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get: %v", err)
	}
}

// TestDeletedReadOncePerInterval: connections retried in a loop on a
// deleted secret read it once per refresh interval, and see it again once
// it is restored.
func TestDeletedReadOncePerInterval(t *testing.T) {
	f := newFake(secretName)
	f.put("v1", val("postgres", "app", pwCur), StageCurrent)
	f.deleted = true
	c, clk := testCache(f, nil)
	ctx := context.Background()
	for range 10 {
		if _, err := c.Get(ctx, secretName); !errors.Is(err, ErrDeleted) {
			t.Fatalf("Get: %v", err)
		}
		if _, err := c.Candidates(ctx, secretName); !errors.Is(err, ErrDeleted) {
			t.Fatalf("Candidates: %v", err)
		}
	}
	if got := f.total(); got != 1 {
		t.Fatalf("20 calls within the interval made %d GetSecretValue calls, want 1", got)
	}
	f.mu.Lock()
	f.deleted = false // RestoreSecret
	f.mu.Unlock()
	clk.add(DefaultRefreshInterval)
	if cr, err := c.Get(ctx, secretName); err != nil || cr.VersionID != "v1" {
		t.Fatalf("after restore: %v, %v", cr, err)
	}
}
