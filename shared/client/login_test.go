package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// errRefused is the fake server's answer to a wrong password.
var errRefused = errors.New("password authentication failed for user")

var testEngine = Engine{
	Names:         []string{"postgres"},
	DefaultPort:   5432,
	IsAuthFailure: func(err error) bool { return errors.Is(err, errRefused) },
}

// server is a fake database: it accepts one user's password at a time and
// records the logins tried.
type server struct {
	mu     sync.Mutex
	user   string
	pw     string
	other  error // returned instead of a login result when set
	logins []string
	// after, when set, runs with s.mu held once a login was answered: the
	// server's password moving between two logins.
	after func(s *server)
}

func (s *server) connect(_ context.Context, cr Credential) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins = append(s.logins, cr.Stage)
	if s.after != nil {
		defer s.after(s)
	}
	if s.other != nil {
		return "", s.other
	}
	if cr.Username == s.user && cr.Password.Reveal() == s.pw {
		return "conn:" + cr.VersionID, nil
	}
	return "", fmt.Errorf("FATAL: %w %q (SQLSTATE 28P01)", errRefused, cr.Username)
}

func TestLogin(t *testing.T) {
	for _, tc := range []struct {
		name       string
		serverUser string
		serverPw   string
		other      error
		opts       []Option
		want       string   // connection, "" for an error
		wantErr    error    // when want is ""
		logins     []string // stages tried, in order
		fallbacks  map[string]uint64
	}{
		{"current works", "app", pwCur, nil, nil, "conn:v1", nil, []string{StageCurrent}, map[string]uint64{}},
		{"set done, finish not yet: pending works", "app", pwPending, nil, nil, "conn:v2", nil,
			[]string{StageCurrent, StagePending}, map[string]uint64{StagePending: 1}},
		{"compensation mid-way: previous works", "app", pwOld, nil, nil, "conn:v0", nil,
			[]string{StageCurrent, StagePending, StagePrevious}, map[string]uint64{StagePrevious: 1}},
		// The fourth login is AWSCURRENT again: refused first, it may work
		// by now (a rollback that set the server back meanwhile).
		{"nothing works: bounded, ErrAuthFailed", "app", "unknown", nil, nil, "", ErrAuthFailed,
			[]string{StageCurrent, StagePending, StagePrevious, StageCurrent}, map[string]uint64{}},
		{"bound of two", "app", pwOld, nil, []Option{WithMaxAttempts(2)}, "", ErrAuthFailed,
			[]string{StageCurrent, StagePending}, map[string]uint64{}},
		{"bound of one: no retry", "app", pwPending, nil, []Option{WithMaxAttempts(1)}, "", ErrAuthFailed,
			[]string{StageCurrent}, map[string]uint64{}},
		{"other errors are returned as they are", "app", pwPending, errors.New("connection refused"), nil, "", nil,
			[]string{StageCurrent}, map[string]uint64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(secretName)
			f.put("v0", val("postgres", "app", pwOld), StagePrevious)
			f.put("v1", val("postgres", "app", pwCur), StageCurrent)
			f.put("v2", val("postgres", "app", pwPending), StagePending)
			var buf bytes.Buffer
			c, _ := testCache(f, &buf, tc.opts...)
			srv := &server{user: tc.serverUser, pw: tc.serverPw, other: tc.other}
			got, err := Login(context.Background(), c, secretName, testEngine, srv.connect)
			if got != tc.want {
				t.Fatalf("Login = %q, %v; want %q", got, err, tc.want)
			}
			switch {
			case tc.other != nil:
				if err != tc.other {
					t.Fatalf("err = %v, want the connect error itself", err)
				}
			case tc.want == "" && !errors.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			case tc.want == "" && !errors.Is(err, errRefused):
				t.Fatalf("err = %v, want it to wrap the server's refusal", err)
			}
			if fmt.Sprint(srv.logins) != fmt.Sprint(tc.logins) {
				t.Fatalf("logins tried = %v, want %v", srv.logins, tc.logins)
			}
			st := c.Stats()
			if fmt.Sprint(st.Fallbacks) != fmt.Sprint(tc.fallbacks) {
				t.Fatalf("Fallbacks = %v, want %v", st.Fallbacks, tc.fallbacks)
			}
			if st.AuthRetries != uint64(len(tc.logins)-1) {
				t.Fatalf("AuthRetries = %d, want %d", st.AuthRetries, len(tc.logins)-1)
			}
			if err != nil {
				assertNoValue(t, "error", err.Error())
			}
			assertNoValue(t, "log", buf.String())
		})
	}
}

// TestLoginRemembersWhatWorked: in the set→finish window the first refusal
// finds AWSPENDING, and later connections try it first; once the
// rotation's end is read, AWSCURRENT is first again.
func TestLoginRemembersWhatWorked(t *testing.T) {
	f := newFake(secretName)
	f.put("v1", val("postgres", "app", pwCur), StageCurrent)
	c, clk := testCache(f, nil)
	srv := &server{user: "app", pw: pwCur}
	ctx := context.Background()
	login := func(want string) {
		t.Helper()
		srv.logins = nil
		got, err := Login(ctx, c, secretName, testEngine, srv.connect)
		if err != nil || got != want {
			t.Fatalf("Login = %q, %v; want %q", got, err, want)
		}
	}
	login("conn:v1")
	// set: the server has the new password, AWSCURRENT has not moved.
	f.put("v2", val("postgres", "app", pwPending), StagePending)
	srv.pw = pwPending
	login("conn:v2")
	login("conn:v2")
	if fmt.Sprint(srv.logins) != "[AWSPENDING]" {
		t.Fatalf("second login in the window tried %v, want AWSPENDING alone", srv.logins)
	}
	// finish: AWSCURRENT moves; the next TTL read sees it.
	f.put("v2", val("postgres", "app", pwPending), StageCurrent)
	f.put("v1", val("postgres", "app", pwCur), StagePrevious)
	clk.add(DefaultTTL)
	login("conn:v2")
	if fmt.Sprint(srv.logins) != "[AWSCURRENT]" {
		t.Fatalf("after finish tried %v, want AWSCURRENT alone", srv.logins)
	}
}

// TestCompensation: the server goes back to the old password while the
// cache still prefers the pending one; one refused login finds it.
func TestCompensation(t *testing.T) {
	f := newFake(secretName)
	f.put("v1", val("postgres", "app", pwCur), StageCurrent)
	f.put("v2", val("postgres", "app", pwPending), StagePending)
	c, clk := testCache(f, nil)
	srv := &server{user: "app", pw: pwPending}
	ctx := context.Background()
	if got, err := Login(ctx, c, secretName, testEngine, srv.connect); err != nil || got != "conn:v2" {
		t.Fatalf("in the window: %q, %v", got, err)
	}
	// Compensation: server back on the old password, AWSPENDING removed.
	f.put("v2", val("postgres", "app", pwPending))
	srv.pw = pwCur
	clk.add(DefaultRefreshInterval)
	srv.logins = nil
	if got, err := Login(ctx, c, secretName, testEngine, srv.connect); err != nil || got != "conn:v1" {
		t.Fatalf("after compensation: %q, %v", got, err)
	}
	if fmt.Sprint(srv.logins) != "[AWSPENDING AWSCURRENT]" {
		t.Fatalf("after compensation tried %v", srv.logins)
	}
}

// TestLoginHerd: many connections refused at once read the secret once.
func TestLoginHerd(t *testing.T) {
	f := newFake(secretName)
	f.put("v1", val("postgres", "app", pwCur), StageCurrent)
	c, _ := testCache(f, nil)
	ctx := context.Background()
	if _, err := c.Get(ctx, secretName); err != nil {
		t.Fatal(err)
	}
	f.put("v2", val("postgres", "app", pwPending), StagePending)
	srv := &server{user: "app", pw: pwPending}
	const n = 100
	var wg sync.WaitGroup
	var failed sync.Map
	for i := range n {
		wg.Go(func() {
			if _, err := Login(ctx, c, secretName, testEngine, srv.connect); err != nil {
				failed.Store(i, err)
			}
		})
	}
	wg.Wait()
	failed.Range(func(k, v any) bool { t.Errorf("connection %v: %v", k, v); return true })
	// One AWSCURRENT read at the start, one full read (3 calls) for the herd.
	if got := f.total(); got != 4 {
		t.Fatalf("%d refused connections made %d GetSecretValue calls, want 4", n, got)
	}
	if st := c.Stats(); st.Logins[StagePending] != n {
		t.Fatalf("Logins = %v, want %d by AWSPENDING", st.Logins, n)
	}
}

// TestNoValueInLogs runs every logged path with a debug logger and checks
// that no password reaches the log.
func TestNoValueInLogs(t *testing.T) {
	f := newFake(secretName)
	f.put("v0", val("postgres", "app", pwOld), StagePrevious)
	f.put("v1", val("postgres", "app", pwCur), StageCurrent)
	f.put("v2", str(`{"engine":"postgres","password":"`+pwPending+`"}`), StagePending) // malformed: logged as unusable
	var buf bytes.Buffer
	c, clk := testCache(f, &buf)
	ctx := context.Background()
	srv := &server{user: "app", pw: "nothing-works"}
	_, err := Login(ctx, c, secretName, testEngine, srv.connect) // refusals, exhausted
	if !errors.Is(err, ErrAuthFailed) {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.err = fmt.Errorf("wrapped: %w", errThrottled)
	f.mu.Unlock()
	clk.add(DefaultTTL + DefaultRefreshInterval)
	if _, err := c.Get(ctx, secretName); err != nil { // stale served, logged
		t.Fatal(err)
	}
	if _, err := c.Candidates(ctx, secretName); err != nil { // last values, logged
		t.Fatal(err)
	}
	log := buf.String()
	for _, want := range []string{"login refused", "refused every credential", "stage not usable", "stale value", "cannot be read"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	assertNoValue(t, "log", log)
	assertNoValue(t, "error", err.Error())
}

// TestBackToBackRotations: a rotation that creates AWSPENDING and sets the
// server within the refresh interval of the read the previous one caused
// is still found: every candidate of that recent read is refused, so one
// more read is made.
func TestBackToBackRotations(t *testing.T) {
	f := newFake(secretName)
	f.put("v1", val("postgres", "app", pwOld), StageCurrent)
	c, clk := testCache(f, nil)
	srv := &server{user: "app", pw: pwOld}
	ctx := context.Background()
	login := func(want string) {
		t.Helper()
		if got, err := Login(ctx, c, secretName, testEngine, srv.connect); err != nil || got != want {
			t.Fatalf("Login = %q, %v; want %q", got, err, want)
		}
	}
	login("conn:v1")
	// Rotation 1: set (a refusal and a read), then finish.
	f.put("v2", val("postgres", "app", pwCur), StagePending)
	srv.pw = pwCur
	login("conn:v2")
	f.put("v2", val("postgres", "app", pwCur), StageCurrent)
	f.put("v1", val("postgres", "app", pwOld), StagePrevious)
	// Rotation 2, 300 ms later: create and set.
	clk.add(300 * time.Millisecond)
	f.put("v3", val("postgres", "app", pwPending), StagePending)
	srv.pw = pwPending
	srv.logins = nil
	login("conn:v3")
	if fmt.Sprint(srv.logins) != "[AWSPENDING AWSCURRENT AWSPENDING]" {
		t.Fatalf("tried %v; want the remembered v2, the recent read's AWSCURRENT (v1 as it was), then the new AWSPENDING", srv.logins)
	}
}

// TestLoginContextEndsAfterARefusal: a caller whose deadline passes between
// the server's refusal and the next candidate gets an error that says so
// (and matches the context's error), not "the server refused every
// credential", which would be false: AWSPENDING, never tried, works. make
// soak measured this under load as "tried AWSPENDING: Error 1045".
func TestLoginContextEndsAfterARefusal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cancel func() (context.Context, context.CancelFunc)
		want   error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}, context.DeadlineExceeded},
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(secretName)
			f.put("v1", val("postgres", "app", pwCur), StageCurrent)
			f.put("v2", val("postgres", "app", pwPending), StagePending)
			var buf bytes.Buffer
			c, _ := testCache(f, &buf)
			srv := &server{user: "app", pw: pwPending}
			// Every stage read now, so Login needs no read of its own (one
			// would go on after Login returned and race with the test).
			if _, err := c.Candidates(context.Background(), secretName); err != nil {
				t.Fatal(err)
			}
			// The caller's context ends while the server answers the first
			// login: the refusal arrives, nothing else may be tried.
			ctx, cancel := tc.cancel()
			defer cancel()
			_, err := Login(ctx, c, secretName, testEngine, srv.connect)
			if !errors.Is(err, ErrInterrupted) || !errors.Is(err, tc.want) || !errors.Is(err, errRefused) {
				t.Fatalf("Login = %v; want ErrInterrupted wrapping %v and the refusal", err, tc.want)
			}
			if errors.Is(err, ErrAuthFailed) {
				t.Fatalf("Login = %v: reported as refused everywhere", err)
			}
			if fmt.Sprint(srv.logins) != "[AWSCURRENT]" {
				t.Fatalf("logins %v, want only the first", srv.logins)
			}
			if st := c.Stats(); st.Interrupted != 1 || st.Exhausted != 0 {
				t.Fatalf("Interrupted %d, Exhausted %d; want 1, 0", st.Interrupted, st.Exhausted)
			}
			if !strings.Contains(buf.String(), "context ended") {
				t.Fatalf("no log line says the context ended:\n%s", buf.String())
			}
			assertNoValue(t, "error", err.Error())
			assertNoValue(t, "log", buf.String())
		})
	}
}

// TestLoginWhileTheServerMovesBack: a rollback sets the server's password
// back to AWSCURRENT's just after a connection found AWSCURRENT refused;
// AWSPENDING and AWSPREVIOUS are then refused too. AWSCURRENT, refused
// before the last refusal, is tried again and logs in. make soak measured
// this (MariaDB, a rotation whose test fails after set): "tried AWSCURRENT,
// AWSPENDING, AWSPREVIOUS", the connection failed.
func TestLoginWhileTheServerMovesBack(t *testing.T) {
	f := newFake(secretName)
	f.put("v0", val("postgres", "app", pwOld), StagePrevious)
	f.put("v1", val("postgres", "app", pwCur), StageCurrent)
	f.put("v2", val("postgres", "app", pwPending), StagePending)
	c, _ := testCache(f, nil)
	srv := &server{user: "app", pw: pwPending}
	srv.after = func(s *server) {
		if len(s.logins) == 1 { // compensation, right after the first refusal
			s.pw = pwCur
		}
	}
	got, err := Login(context.Background(), c, secretName, testEngine, srv.connect)
	if err != nil || got != "conn:v1" {
		t.Fatalf("Login = %q, %v; want conn:v1", got, err)
	}
	if fmt.Sprint(srv.logins) != "[AWSCURRENT AWSPENDING AWSPREVIOUS AWSCURRENT]" {
		t.Fatalf("tried %v", srv.logins)
	}
}

// TestTornRead: a rotation's finish lands between the cache's reads of
// AWSCURRENT and AWSPENDING, so the reads show the old version as
// AWSCURRENT and, again, as AWSPREVIOUS, and no AWSPENDING: the new
// password, the one the server has, is in none of them. The cache sees the
// version's labels disagree, reads again and finds it.
func TestTornRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		twice bool // the read made again is torn too
		want  string
		torn  int
	}{
		{"finish between two reads", false, "conn:v2", 1},
		// An operator's rollback moves AWSCURRENT back to v1 (and the
		// server's password with it) during the read made again.
		{"and a rollback during the read made again", true, "conn:v1", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(secretName)
			f.put("v0", val("postgres", "app", pwOld), StagePrevious)
			f.put("v1", val("postgres", "app", pwCur), StageCurrent)
			c, _ := testCache(f, nil)
			ctx := context.Background()
			if _, err := c.Get(ctx, secretName); err != nil { // v1 cached, as before the rotation
				t.Fatal(err)
			}
			// create and set: the server has v2's password.
			f.put("v2", val("postgres", "app", pwPending), StagePending)
			srv := &server{user: "app", pw: pwPending}
			pendingReads := 0 // onCall runs in the one goroutine that reads
			f.onCall = func(stage string) {
				if stage != StagePending {
					return
				}
				pendingReads++
				switch {
				case pendingReads == 1: // finish: AWSCURRENT moves, then AWSPENDING goes
					f.put("v2", val("postgres", "app", pwPending), StageCurrent)
					f.put("v1", val("postgres", "app", pwCur), StagePrevious)
				case pendingReads == 2 && tc.twice: // the rollback
					f.put("v1", val("postgres", "app", pwCur), StageCurrent)
					f.put("v2", val("postgres", "app", pwPending), StagePrevious)
					srv.mu.Lock()
					srv.pw = pwCur
					srv.mu.Unlock()
				}
			}
			got, err := Login(ctx, c, secretName, testEngine, srv.connect)
			if err != nil || got != tc.want {
				t.Fatalf("Login = %q, %v (tried %v); want %s", got, err, srv.logins, tc.want)
			}
			if st := c.Stats(); st.TornReads != uint64(tc.torn) {
				t.Fatalf("TornReads = %d, want %d", st.TornReads, tc.torn)
			}
			// The read made again replaced the torn AWSCURRENT: new
			// connections start with the version the server has.
			if cr, err := c.Get(ctx, secretName); err != nil || "conn:"+cr.VersionID != tc.want {
				t.Fatalf("Get = %v, %v; want %s", cr, err, tc.want)
			}
		})
	}
}

// TestLoginDeadlineDuringTheNextLogin: the caller's deadline passes while
// the login with the next candidate is under way (the driver gives up
// with its own timeout error): the error says a login was refused and the
// context ended, so an application can tell a rotation's refusal plus a
// slow server from a server that is merely slow.
func TestLoginDeadlineDuringTheNextLogin(t *testing.T) {
	f := newFake(secretName)
	f.put("v1", val("postgres", "app", pwCur), StageCurrent)
	f.put("v2", val("postgres", "app", pwPending), StagePending)
	c, _ := testCache(f, nil)
	if _, err := c.Candidates(context.Background(), secretName); err != nil {
		t.Fatal(err)
	}
	srv := &server{user: "app", pw: pwPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errDriverTimeout := errors.New("timeout: context already done")
	connect := func(ctx context.Context, cr Credential) (string, error) {
		if cr.Stage == StagePending {
			cancel() // the deadline passes during this login
			return "", fmt.Errorf("%w: %w", errDriverTimeout, ctx.Err())
		}
		return srv.connect(ctx, cr)
	}
	_, err := Login(ctx, c, secretName, testEngine, connect)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) || !errors.Is(err, errDriverTimeout) {
		t.Fatalf("Login = %v; want ErrInterrupted wrapping the context's error and the driver's", err)
	}
	if !strings.Contains(err.Error(), "tried AWSCURRENT, AWSPENDING") {
		t.Fatalf("Login = %v; want both tries named", err)
	}
}
