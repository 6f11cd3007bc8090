//go:build integration

// Package clienttest runs the client's rotation scenarios against a real
// server and the Secrets Manager emulator through the real SDK client: the
// steps of a rotation are played by hand (PutSecretValue, the server's own
// password change, UpdateSecretVersionStage) so each window between them
// can be probed with new connections.
package clienttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/smlocal"
	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/client"
)

// Target is one engine's server, as the scenarios need it.
type Target struct {
	Engine string // the secret's engine field
	Host   string
	Port   int
	DBName string
	// SetPassword creates user with password pw, or changes its password.
	SetPassword func(t *testing.T, user, pw string)
	// Connect opens a new connection through the engine's connector, runs
	// a query on it and returns the user it is logged in as.
	Connect func(ctx context.Context, c *client.Cache, secretID string) (string, error)
}

// SM is the emulator with a real SDK client on it.
type SM struct {
	Client *secretsmanager.Client
	t      *testing.T
}

// StartSM starts the emulator for t.
func StartSM(t *testing.T) *SM {
	t.Helper()
	srv, url, err := smlocal.Start(smlocal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cfg, err := standin.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &SM{t: t, Client: secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(url) })}
}

// Value renders a database secret.
func (tg Target) Value(user, pw string) string {
	b, _ := json.Marshal(map[string]any{"engine": tg.Engine, "host": tg.Host, "port": tg.Port,
		"username": user, "password": pw, "dbname": tg.DBName})
	return string(b)
}

// Create makes a secret whose AWSCURRENT is value; it returns the version.
func (s *SM) Create(name, value string) string {
	s.t.Helper()
	v := uuid.NewString()
	if _, err := s.Client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String(value), ClientRequestToken: aws.String(v)}); err != nil {
		s.t.Fatal(err)
	}
	return v
}

// Pending stores value as AWSPENDING (createSecret); it returns the version.
func (s *SM) Pending(name, value string) string {
	s.t.Helper()
	v := uuid.NewString()
	if _, err := s.Client.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(name), SecretString: aws.String(value), ClientRequestToken: aws.String(v),
		VersionStages: []string{client.StagePending}}); err != nil {
		s.t.Fatal(err)
	}
	return v
}

// Finish moves AWSCURRENT from cur to next and removes AWSPENDING
// (finishSecret).
func (s *SM) Finish(name, cur, next string) {
	s.t.Helper()
	s.stage(name, client.StageCurrent, next, cur)
	s.stage(name, client.StagePending, "", next)
}

// Unpend removes AWSPENDING from v (the end of compensation).
func (s *SM) Unpend(name, v string) {
	s.t.Helper()
	s.stage(name, client.StagePending, "", v)
}

func (s *SM) stage(name, stage, to, from string) {
	s.t.Helper()
	in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(name), VersionStage: aws.String(stage)}
	if to != "" {
		in.MoveToVersionId = aws.String(to)
	}
	if from != "" {
		in.RemoveFromVersionId = aws.String(from)
	}
	if _, err := s.Client.UpdateSecretVersionStage(context.Background(), in); err != nil {
		s.t.Fatal(err)
	}
}

// Run plays the scenarios against tg. Every connection in a rotation
// scenario must succeed: that is the client's promise.
func Run(t *testing.T, tg Target) {
	sm := StartSM(t)
	ctx := context.Background()
	// A TTL far longer than the test: only refused logins make the cache
	// read the secret again, as an application caching between rotations.
	newCache := func() *client.Cache { return client.New(sm.Client, client.WithTTL(time.Hour)) }
	connect := func(t *testing.T, c *client.Cache, name, wantUser string) {
		t.Helper()
		user, err := tg.Connect(ctx, c, name)
		if err != nil {
			t.Fatalf("a new connection failed: %v", err)
		}
		if user != wantUser {
			t.Fatalf("logged in as %q, want %q", user, wantUser)
		}
	}

	t.Run("single user: set before finish, then finish", func(t *testing.T) {
		const name, user = "single", "app_single"
		p1, p2 := "Single-pw1-9c1f", "Single-pw2-4b7e"
		tg.SetPassword(t, user, p1)
		v1 := sm.Create(name, tg.Value(user, p1))
		c := newCache()
		connect(t, c, name, user)
		v2 := sm.Pending(name, tg.Value(user, p2)) // create
		connect(t, c, name, user)
		tg.SetPassword(t, user, p2) // set: AWSCURRENT still holds p1
		connect(t, c, name, user)
		connect(t, c, name, user)
		st := c.Stats()
		if st.Fallbacks[client.StagePending] != 1 || st.Logins[client.StagePending] != 2 {
			t.Fatalf("stats after set = %+v; want one fallback to AWSPENDING, then AWSPENDING first", st)
		}
		sm.Finish(name, v1, v2) // finish
		connect(t, c, name, user)
		t.Logf("stats: %+v", c.Stats())
	})

	t.Run("back-to-back rotations within the refresh interval", func(t *testing.T) {
		const name, user = "backtoback", "app_b2b"
		p1, p2, p3 := "B2b-pw1-2a6f", "B2b-pw2-7c1e", "B2b-pw3-4d9b"
		tg.SetPassword(t, user, p1)
		v1 := sm.Create(name, tg.Value(user, p1))
		c := newCache()
		connect(t, c, name, user)
		v2 := sm.Pending(name, tg.Value(user, p2))
		tg.SetPassword(t, user, p2)
		connect(t, c, name, user) // a refusal and a read
		sm.Finish(name, v1, v2)
		// The next rotation sets the server well within a second of that
		// read: its candidates are all refused, and one more read finds p3.
		sm.Pending(name, tg.Value(user, p3))
		tg.SetPassword(t, user, p3)
		connect(t, c, name, user)
	})

	t.Run("compensation: the server back on the old password", func(t *testing.T) {
		const name, user = "compensated", "app_comp"
		p1, p2 := "Comp-pw1-7d2a", "Comp-pw2-1e8c"
		tg.SetPassword(t, user, p1)
		sm.Create(name, tg.Value(user, p1))
		c := newCache()
		connect(t, c, name, user)
		v2 := sm.Pending(name, tg.Value(user, p2))
		tg.SetPassword(t, user, p2)
		connect(t, c, name, user) // AWSPENDING, remembered
		tg.SetPassword(t, user, p1)
		connect(t, c, name, user) // the remembered AWSPENDING refused, AWSCURRENT works
		sm.Unpend(name, v2)
		connect(t, c, name, user)
		if st := c.Stats(); st.Exhausted != 0 || st.Fallbacks[client.StageCurrent] != 1 {
			t.Fatalf("stats = %+v; want one fallback to AWSCURRENT", st)
		}
	})

	t.Run("compensation after finish: AWSCURRENT moved back", func(t *testing.T) {
		const name, user = "rolledback", "app_rb"
		p1, p2 := "Rb-pw1-3f9a", "Rb-pw2-8c2d"
		tg.SetPassword(t, user, p1)
		v1 := sm.Create(name, tg.Value(user, p1))
		c := newCache()
		connect(t, c, name, user)
		v2 := sm.Pending(name, tg.Value(user, p2))
		tg.SetPassword(t, user, p2)
		sm.Finish(name, v1, v2)
		connect(t, c, name, user) // cached p1 refused: AWSCURRENT is v2
		// The bake fails: the server goes back first, then AWSCURRENT.
		tg.SetPassword(t, user, p1)
		connect(t, c, name, user) // AWSPREVIOUS holds p1
		sm.stage(name, client.StageCurrent, v1, v2)
		connect(t, c, name, user)
	})

	t.Run("alternating users", func(t *testing.T) {
		const name, a, b = "alternating", "app_alt", "app_alt_clone"
		a1, b1, a2 := "Alt-a1-6e3d", "Alt-b1-2c8f", "Alt-a2-9b4e"
		tg.SetPassword(t, a, a1)
		v1 := sm.Create(name, tg.Value(a, a1))
		c := newCache()
		connect(t, c, name, a)
		// Rotation 1 switches to the clone; the cached user a still works.
		v2 := sm.Pending(name, tg.Value(b, b1))
		tg.SetPassword(t, b, b1)
		sm.Finish(name, v1, v2)
		connect(t, c, name, a)
		// Rotation 2 changes a's password: the cached value stops working,
		// and the new AWSCURRENT (user b) is found.
		v3 := sm.Pending(name, tg.Value(a, a2))
		tg.SetPassword(t, a, a2)
		connect(t, c, name, b)
		sm.Finish(name, v2, v3)
		connect(t, c, name, b) // b still works until rotation 3
		if st := c.Stats(); st.Fallbacks[client.StageCurrent] != 1 {
			t.Fatalf("stats = %+v; want one fallback to AWSCURRENT", st)
		}
	})

	t.Run("a herd of new connections in the set window", func(t *testing.T) {
		const name, user = "herd", "app_herd"
		p1, p2 := "Herd-pw1-5a7c", "Herd-pw2-0d3b"
		tg.SetPassword(t, user, p1)
		sm.Create(name, tg.Value(user, p1))
		// Logins under the race detector can take longer than the default
		// refresh interval; a minute makes "one read" the whole herd's.
		c := client.New(sm.Client, client.WithTTL(time.Hour), client.WithRefreshInterval(time.Minute))
		connect(t, c, name, user)
		sm.Pending(name, tg.Value(user, p2))
		tg.SetPassword(t, user, p2)
		before := c.Stats().GetSecretValueCalls
		const n = 16
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() {
				if _, err := tg.Connect(ctx, c, name); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("a new connection failed: %v", err)
		}
		if calls := c.Stats().GetSecretValueCalls - before; calls > 3 {
			t.Fatalf("%d refused connections made %d GetSecretValue calls, want one read (3 calls)", n, calls)
		}
	})

	t.Run("bad input: clear errors, no value", func(t *testing.T) {
		const user, pw = "app_bad", "Bad-pw-4f6a2e"
		tg.SetPassword(t, user, pw)
		other := "postgres" // an engine the target's connector does not take
		if tg.Engine == "postgres" {
			other = "redis"
		}
		sm.Create("deleted", tg.Value(user, pw))
		c := newCache()
		connect(t, c, "deleted", user)
		if _, err := sm.Client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("deleted"), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
			t.Fatal(err)
		}
		c.Invalidate("deleted")
		sm.Create("notjson", "user="+user+" password="+pw)
		sm.Create("nopassword", `{"engine":"`+tg.Engine+`","host":"`+tg.Host+`","username":"`+user+`"}`)
		sm.Create("wrongengine", strings.Replace(tg.Value(user, pw), `"engine":"`+tg.Engine+`"`, `"engine":"`+other+`"`, 1))
		for _, tc := range []struct {
			name string
			want error
		}{
			{"deleted", client.ErrDeleted}, {"missing", client.ErrNotFound}, {"notjson", client.ErrInvalidValue},
			{"nopassword", client.ErrInvalidValue}, {"wrongengine", client.ErrWrongEngine},
		} {
			_, err := tg.Connect(ctx, c, tc.name)
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), `"`+tc.name+`"`) {
				t.Errorf("%s: err = %v, want %v naming the secret", tc.name, err, tc.want)
			}
			if strings.Contains(fmt.Sprint(err), pw) {
				t.Errorf("%s: the error holds the password: %v", tc.name, err)
			}
		}
	})
}
