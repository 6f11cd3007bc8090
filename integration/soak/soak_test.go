//go:build integration

package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/shared/client"
)

// TestSoakShort is `make soak` in small, in `make test`: four rotations
// per engine × strategy (a success, a rotation whose test fails after set,
// an operator rollback or, for alternating users, a second success, and a
// success), two workers per mode. The injected faults of `make soak` (a
// lost reply, a crash) are left out: each holds the fault injector, and so
// every other cell's rotations, for its whole run. Bake rollbacks are left
// out too: their compensation moves AWSCURRENT back before it sets the
// database's password back, and in between no label holds the password
// the database has, so a client can fail there (README: Soak); `make
// soak` counts those failures. A mode that must not fail sees 0 failed
// requests and 0 failed window probes; the naive baseline is measured, and
// its window probes fail exactly where they must: a fresh login with
// AWSCURRENT while a single-user database already has AWSPENDING's
// password is refused, every time, and with alternating users it works.
func TestSoakShort(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := local.Start(ctx, local.Options{RetryIntervalScale: 0.01, CaptureStdio: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	t.Logf("stack started in %v", time.Since(start).Round(time.Millisecond))
	cfg := Config{Rotations: 4, Workers: 2, Every: 100 * time.Millisecond, Lifetime: 250 * time.Millisecond,
		Kinds:      []kind{kindSuccess, kindTestFails, kindOperator, kindSuccess},
		NaiveEvery: time.Second, Pause: client.DefaultRefreshInterval + 500*time.Millisecond, Log: logWriter{t}}
	res, err := Run(ctx, env, cfg, dialers(env, cfg, env.Logs, slog.LevelInfo)...)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printTable(&b, res)
	t.Logf("soak (%v in all):\n%s", time.Since(start).Round(time.Millisecond), b.String())

	for _, p := range res.Problems() {
		t.Error(p)
	}
	if len(res.Cells) != 6 {
		t.Fatalf("%d cells, want 6", len(res.Cells))
	}
	for _, c := range res.Cells {
		name := c.Engine + " × " + c.Strategy
		if c.Rotations != cfg.Rotations {
			t.Errorf("%s: %d rotations, want %d", name, c.Rotations, cfg.Rotations)
		}
		if len(c.Modes) != 2 || c.Modes[0].Mode != "client" || c.Modes[1].Mode != "naive" {
			t.Fatalf("%s: modes %+v, want client and naive", name, c.Modes)
		}
		for _, m := range c.Modes {
			// The pools must have logged in again and again, or no
			// window was ever met.
			if m.Requests == 0 || m.Connections < int64(cfg.Rotations) {
				t.Errorf("%s, %s: %d requests, %d connections opened: the workers did not run", name, m.Mode, m.Requests, m.Connections)
			}
			if m.Probes == 0 {
				t.Errorf("%s, %s: no window probe ran", name, m.Mode)
			}
			if m.Mode != "naive" {
				continue
			}
			single := c.Strategy == "single user"
			switch {
			case single && m.ProbesFailed != m.Probes:
				t.Errorf("%s: %d of %d naive window probes failed, want all: AWSCURRENT's password was not refused between set and finish", name, m.ProbesFailed, m.Probes)
			case !single && m.ProbesFailed != 0:
				t.Errorf("%s: %d naive window probes failed: the user AWSCURRENT names must keep working (%s)", name, m.ProbesFailed, m.FirstError)
			}
		}
	}
}

// logWriter sends the soak's progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
