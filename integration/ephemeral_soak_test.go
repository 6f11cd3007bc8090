//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/shared/ephemeral"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// errSoakFault is what the soak's random faults return.
var errSoakFault = errors.New("soak: injected fault")

// TestEphemeralSoak issues SECRETSAGA_EPHEMERAL_SOAK leases (default 60;
// make soak-ephemeral: 1,000) over the three engines with TTLs of 5 to 10
// seconds while every external call of issue, revoke and the sweeper fails
// with probability SECRETSAGA_EPHEMERAL_FAULT_RATE (default 0.03): reads
// before they act, writes after (the effect happened, the caller sees an
// error). Each lease runs as the state machine runs it: issue (3 attempts
// on RetryableError), compensation (revoke) when it fails, a wait until
// expiry, revoke (3 attempts with backoff); what is left is the sweeper's,
// which runs every sweeperPeriod. It then checks, from the ledger and from
// each database's own user list, that no login outlived its expiry by more
// than one sweeper period, and logs the figures.
func TestEphemeralSoak(t *testing.T) {
	n := 60
	if v, err := strconv.Atoi(os.Getenv("SECRETSAGA_EPHEMERAL_SOAK")); err == nil && v > 0 {
		n = v
	}
	rate := 0.03
	if v, err := strconv.ParseFloat(os.Getenv("SECRETSAGA_EPHEMERAL_FAULT_RATE"), 64); err == nil && v >= 0 {
		rate = v
	}
	const sweeperPeriod = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	env.Faults.Reset()
	defer env.Faults.Reset()
	templates := map[string]string{}
	for _, engine := range ephemeralEngines {
		tpl, _ := ephTemplate(t, ctx, engine, "", "1h")
		templates[engine] = tpl
	}
	before := map[string][]string{}
	for _, engine := range ephemeralEngines {
		before[engine] = ephUsers(t, ctx, engine)
	}

	var injected atomic.Int64
	for _, c := range []struct {
		call  string
		phase faultinject.Phase
	}{
		{"DynamoDB.GetItem", faultinject.Before}, {"DynamoDB.Query", faultinject.Before},
		{"DynamoDB.TransactWriteItems", faultinject.After},
		{"Secrets Manager.DescribeSecret", faultinject.Before}, {"Secrets Manager.GetSecretValue", faultinject.Before},
		{"Secrets Manager.ListSecrets", faultinject.Before},
		{"Secrets Manager.CreateSecret", faultinject.After}, {"Secrets Manager.PutSecretValue", faultinject.After},
		{"Secrets Manager.DeleteSecret", faultinject.After}, {"Secrets Manager.TagResource", faultinject.After},
		{"EventBridge.PutEvents", faultinject.After},
		{"target.NewUser", faultinject.After}, {"target.Verify", faultinject.Before},
		{"target.DeleteUser", faultinject.After}, {"target.ListUsers", faultinject.Before},
	} {
		for _, fn := range []string{"ephemeralissue", "ephemeralrevoke", "ephemeralsweep"} {
			env.Faults.Add(faultinject.Rule{Function: fn, Call: c.call, Phase: c.phase, Hook: func(context.Context) error {
				if mrand.Float64() < rate {
					injected.Add(1)
					return errSoakFault
				}
				return nil
			}})
		}
	}
	issueSvc, revokeSvc, sweepSvc := ephService(t, "ephemeralissue"), ephService(t, "ephemeralrevoke"), ephService(t, "ephemeralsweep")
	for _, s := range []*ephemeral.Service{issueSvc, revokeSvc, sweepSvc} {
		// The soak's seconds where a deployment has minutes.
		s.IssueGrace, s.RetryAfter, s.AlertAfter = 3*time.Second, 250*time.Millisecond, 5
	}
	issueCtx := faultinject.WithFunction(ctx, "ephemeralissue")
	revokeCtx := faultinject.WithFunction(ctx, "ephemeralrevoke")
	sweepCtx := faultinject.WithFunction(ctx, "ephemeralsweep")

	// The sweeper, on its schedule.
	stopSweeper := make(chan struct{})
	var sweeps, sweptRevoked atomic.Int64
	var sweeperDone sync.WaitGroup
	sweeperDone.Add(1)
	go func() {
		defer sweeperDone.Done()
		tick := time.NewTicker(sweeperPeriod)
		defer tick.Stop()
		for {
			select {
			case <-stopSweeper:
				return
			case <-tick.C:
				out, err := sweepSvc.Sweep(sweepCtx, ephemeral.SweepInput{})
				sweeps.Add(1)
				if err == nil {
					sweptRevoked.Add(int64(len(out.Revoked) + len(out.Orphans)))
				}
			}
		}
	}()

	retry := func(f func() error) error {
		var err error
		for i := range 3 {
			if err = f(); err == nil {
				return nil
			}
			var re *faults.RetryableError
			if !errors.As(err, &re) {
				return err
			}
			time.Sleep(time.Duration(100<<i) * time.Millisecond)
		}
		return err
	}
	var (
		mu                                sync.Mutex
		ids                               []string
		issued, issueFailed, revokedByRun atomic.Int64
		lastExpiry                        time.Time
	)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		engine := ephemeralEngines[i%len(ephemeralEngines)]
		id := testUUID()
		name, _ := ephemeral.LeaseName(id)
		mu.Lock()
		ids = append(ids, name)
		mu.Unlock()
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			var l ephemeral.Lease
			err := retry(func() error {
				var err error
				l, err = issueSvc.Issue(issueCtx, ephemeral.IssueInput{TemplateId: templates[engine], LeaseId: id,
					TTL: fmt.Sprintf("%ds", 5+mrand.IntN(6)), Owner: "soak", ExecutionArn: "soak:" + id})
				return err
			})
			<-sem
			if err != nil {
				if issueFailed.Add(1) <= 5 {
					t.Logf("issue failed: %v", err)
				}
				// CompensateIssue; what it cannot do is the sweeper's.
				_ = retry(func() error {
					_, err := revokeSvc.Revoke(revokeCtx, ephemeral.LeaseInput{LeaseId: id, Reason: "issue failed", IfExists: true, ExecutionArn: "soak:" + id})
					return err
				})
				return
			}
			issued.Add(1)
			notAfter, _ := time.Parse(time.RFC3339, l.NotAfter)
			mu.Lock()
			if notAfter.After(lastExpiry) {
				lastExpiry = notAfter
			}
			mu.Unlock()
			time.Sleep(time.Until(notAfter))
			sem <- struct{}{}
			defer func() { <-sem }()
			if retry(func() error {
				_, err := revokeSvc.Revoke(revokeCtx, ephemeral.LeaseInput{LeaseId: l.LeaseId, Reason: "expired", ExecutionArn: "soak:" + id})
				return err
			}) == nil {
				revokedByRun.Add(1)
			}
		}()
	}
	wg.Wait()
	issueTime := time.Since(start)
	// One sweeper period past the last expiry (and past the issue grace
	// of the last half-done issue), plus the sweep's own run.
	deadline := lastExpiry.Add(sweeperPeriod + 3*time.Second + 2*time.Second)
	time.Sleep(time.Until(deadline))
	close(stopSweeper)
	sweeperDone.Wait()
	env.Faults.Reset()
	checkedAt := time.Now()

	// From the databases' own lists: no login of this soak alive.
	alive := 0
	for _, engine := range ephemeralEngines {
		for _, u := range ephUsers(t, ctx, engine) {
			if slices.Contains(ids, u) && !slices.Contains(before[engine], u) {
				alive++
				t.Errorf("%s: login %s still exists at %s", engine, u, checkedAt.Format(time.RFC3339))
			}
		}
	}
	// From the ledger: how late each revocation was.
	var late []time.Duration
	overPeriod, journaled := 0, 0
	byActor := map[string]int{} // who journaled REVOKED
	for _, id := range ids {
		l, ok, err := env.EphemeralLease(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue // the issue failed before ISSUING: nothing was made
		}
		journaled++
		if l.State != ledger.Revoked {
			t.Errorf("lease %s is %s at the end", id, l.State)
			continue
		}
		hist, err := env.Ledger.EphemeralHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var revokedAt time.Time
		for _, r := range hist {
			if r.State == ledger.Revoked && revokedAt.IsZero() {
				revokedAt = r.Time()
				byActor[r.Actor]++
			}
		}
		d := revokedAt.Sub(l.NotAfterTime())
		late = append(late, d)
		if d > sweeperPeriod {
			overPeriod++
		}
	}
	slices.Sort(late)
	pct := func(p float64) time.Duration {
		if len(late) == 0 {
			return 0
		}
		return late[min(len(late)-1, int(p*float64(len(late))))].Round(time.Millisecond)
	}
	t.Logf("ephemeral soak: %d leases (%d issued, %d issues failed and were compensated), fault rate %.2f, %d faults injected, %v to issue them all",
		n, issued.Load(), issueFailed.Load(), rate, injected.Load(), issueTime.Round(time.Millisecond))
	t.Logf("journaled leases %d, REVOKED written by their own run (revoke or compensation) %d, by the sweeper %d (%d sweeps, every %v; its Revoke calls that found or made REVOKED %d); revocations the run gave up on %d",
		journaled, byActor["ephemeralrevoke"], byActor["ephemeralsweep"], sweeps.Load(), sweeperPeriod, sweptRevoked.Load(), issued.Load()-revokedByRun.Load())
	t.Logf("revocation after expiry: p50 %v, p99 %v, max %v; leases revoked later than expiry + one sweeper period: %d; logins alive at expiry + one period: %d",
		pct(0.5), pct(0.99), pct(1), overPeriod, alive)
	if alive > 0 {
		t.Errorf("%d logins alive past expiry + one sweeper period", alive)
	}
}
