//go:build integration

package integration

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/outage"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/ephemeral"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secret"
)

// runEphemeral starts the short-lived login machine with input in the
// background and waits until its lease is ISSUED; done yields the
// finished execution.
func runEphemeral(t *testing.T, ctx context.Context, input map[string]any) (ledger.EphemeralLease, *secret.Value, <-chan *sfnlocal.Execution) {
	t.Helper()
	id := testUUID()
	input["LeaseId"] = id
	name, _ := ephemeral.LeaseName(id)
	done := make(chan *sfnlocal.Execution, 1)
	go func() {
		x, err := env.ExecuteEphemeral(ctx, "eph-"+id, input)
		if err != nil {
			t.Errorf("execute: %v", err)
		}
		done <- x
	}()
	for {
		l, ok, err := env.EphemeralLease(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if ok && l.State == ledger.Issued {
			return l, secretValue(t, ctx, l.Secret), done
		}
		select {
		case x := <-done:
			done <- x
			return ledger.EphemeralLease{ID: name}, nil, done
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestEphemeralSaga: through the state machine on sfnlocal and the Lambda
// stand-in, per engine: issue -> the login works -> the Wait state waits
// out the TTL -> revoked (refused and gone, its secret deleted), with no
// one asking. A renewal moves the expiry the machine waits for.
func TestEphemeralSaga(t *testing.T) {
	for _, engine := range ephemeralEngines {
		t.Run(engine, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			env.Faults.Reset()
			tpl, role := ephTemplate(t, ctx, engine, "", "1h")
			l, login, done := runEphemeral(t, ctx, map[string]any{"TemplateId": tpl, "TTL": "5s", "Owner": "saga-test"})
			if login == nil {
				x := <-done
				t.Fatalf("not issued: %s %s %s", x.Status, x.Error, x.Cause)
			}
			if err := env.CanLoginEphemeral(ctx, l.Secret, role); err != nil {
				t.Fatalf("issued login: %v", err)
			}
			if engine == "postgres" {
				// Renew once: the machine must wait for the new expiry.
				if _, err := ephService(t, "secretctl").Renew(ctx, ephemeral.RenewInput{LeaseId: l.ID, TTL: "8s"}); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Until(l.NotAfterTime()) + 1500*time.Millisecond)
				if err := verifyLogin(ctx, login); err != nil {
					t.Errorf("renewed login refused after its first expiry: %v", err)
				}
			}
			x := <-done
			if x.Status != "SUCCEEDED" {
				t.Fatalf("execution %s: %s %s", x.Status, x.Error, x.Cause)
			}
			assertGone(t, ctx, engine, l.ID, login)
			if leaks := env.LeaksOf(ctx, []string{login.Password.Reveal()}); len(leaks) > 0 {
				t.Fatalf("the issued password appears in %v", leaks)
			}
		})
	}
}

// TestEphemeralSagaBadInput: bad input fails the execution with a named
// InputError, and nothing is created.
func TestEphemeralSagaBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env.Faults.Reset()
	tpl, _ := ephTemplate(t, ctx, "postgres", "", "30m")
	before := ephUsers(t, ctx, "postgres")
	l, login, done := runEphemeral(t, ctx, map[string]any{"TemplateId": tpl, "TTL": "2h"})
	x := <-done
	if login != nil || x.Status != "FAILED" || x.Error != "InputError" || !strings.Contains(x.Cause, "above the max TTL") {
		t.Fatalf("execution %s %s %s, want FAILED with an InputError about the max TTL", x.Status, x.Error, x.Cause)
	}
	if _, ok, _ := env.EphemeralLease(ctx, l.ID); ok {
		t.Error("a lease was journaled for bad input")
	}
	if after := ephUsers(t, ctx, "postgres"); !slices.Equal(before, after) {
		t.Errorf("logins %v -> %v", before, after)
	}
}

// TestEphemeralSagaRevocationFails: the database is down at expiry; the
// machine retries the revocation with backoff, publishes Revocation
// Failed and fails; the sweeper revokes the lease once the database is
// back, with no person involved.
func TestEphemeralSagaRevocationFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env.Faults.Reset()
	p, err := outage.Start(net.JoinHostPort(env.Postgres.Host, strconv.Itoa(env.Postgres.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tpl := proxiedTemplate(t, ctx, p)
	l, login, done := runEphemeral(t, ctx, map[string]any{"TemplateId": tpl, "TTL": "5s"})
	if login == nil {
		x := <-done
		t.Fatalf("not issued: %s %s %s", x.Status, x.Error, x.Cause)
	}
	login.Host, login.Port = env.Postgres.Host, env.Postgres.Port
	p.Cut()
	x := <-done
	if x.Status != "FAILED" || x.Error != "RevocationFailedError" {
		t.Fatalf("execution %s %s %s, want FAILED RevocationFailedError", x.Status, x.Error, x.Cause)
	}
	if !alertedEvent(l.ID) {
		t.Error("no Revocation Failed event")
	}
	cur, _, _ := env.EphemeralLease(ctx, l.ID)
	if cur.State != ledger.Revoking || cur.Queue == "" {
		t.Fatalf("lease %s after the failed revocation: %s, queue %q", l.ID, cur.State, cur.Queue)
	}
	p.Restore()
	sweeper := ephService(t, "ephemeralsweep")
	sweeper.Now = func() time.Time { return time.Now().Add(time.Hour) }
	out, err := sweeper.Sweep(ctx, ephemeral.SweepInput{SkipCrossCheck: true})
	if err != nil || !slices.Contains(out.Revoked, l.ID) {
		t.Fatalf("sweep: %+v, %v", out, err)
	}
	assertGone(t, ctx, "postgres", l.ID, login)
}

// testUUID is a random UUID (the lease id the CLI would pass).
func testUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// TestEphemeralMachineFaultMatrix is the fault matrix applied to the
// short-lived login machine: a fault before each call the issue and revoke
// functions make in a clean execution, and after each of their writes,
// one cell at a time, through sfnlocal and the Lambda stand-in, so that the
// machine's own Retry and Catch handle it. Every execution must end
// revoked (SUCCEEDED, or, when the new login failed its test, FAILED with
// TestFailedError after CompensateIssue) and leave nothing behind.
func TestEphemeralMachineFaultMatrix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	env.Faults.Reset()
	defer env.Faults.Reset()
	tpl, _ := ephTemplate(t, ctx, "postgres", "", "1h")
	// The calls of a clean execution, per function.
	calls := map[string][]string{}
	var mu sync.Mutex
	stop := env.Faults.Observe(func(c faultinject.Call) {
		if c.Function == "ephemeralissue" || c.Function == "ephemeralrevoke" {
			mu.Lock()
			calls[c.Function] = append(calls[c.Function], c.Name)
			mu.Unlock()
		}
	})
	l, _, done := runEphemeral(t, ctx, map[string]any{"TemplateId": tpl, "TTL": "5s"})
	if x := <-done; x.Status != "SUCCEEDED" {
		t.Fatalf("clean execution: %s %s %s", x.Status, x.Error, x.Cause)
	}
	stop()
	assertGone(t, ctx, "postgres", l.ID, nil)
	writes := map[string]bool{"DynamoDB.TransactWriteItems": true, "Secrets Manager.CreateSecret": true, "Secrets Manager.DeleteSecret": true,
		"target.NewUser": true, "target.DeleteUser": true, "EventBridge.PutEvents": true}
	cells := 0
	for _, fn := range []string{"ephemeralissue", "ephemeralrevoke"} {
		if len(calls[fn]) < 5 {
			t.Fatalf("%s made %d calls in a clean execution: %v", fn, len(calls[fn]), calls[fn])
		}
		for _, phase := range []faultinject.Phase{faultinject.Before, faultinject.After} {
			for i, c := range nth(calls[fn]) {
				if phase == faultinject.After && !writes[c.name] {
					continue
				}
				cells++
				t.Run(fmt.Sprintf("%s/%s/%d-%s", fn, phase, i+1, c.name), func(t *testing.T) {
					env.Faults.Reset()
					env.Faults.Add(faultinject.Rule{Function: fn, Call: c.name, Nth: c.nth, Phase: phase, Err: errors.New("injected")})
					l, login, done := runEphemeral(t, ctx, map[string]any{"TemplateId": tpl, "TTL": "5s"})
					x := <-done
					if env.Faults.Fired() == 0 {
						t.Fatal("the fault did not fire")
					}
					switch {
					case x.Status == "SUCCEEDED":
					case x.Status == "FAILED" && x.Error == "TestFailedError" && c.name == "target.Verify":
						// The new login failed its test: compensated.
					default:
						t.Fatalf("execution %s %s %s", x.Status, x.Error, x.Cause)
					}
					assertGone(t, ctx, "postgres", l.ID, login)
				})
			}
		}
	}
	t.Logf("%d cells", cells)
}
