//go:build integration

package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/integration/cwlocal"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// TestBakeAlarms: after finish, the CloudWatch alarms named in BakeAlarms
// must stay out of ALARM for the bake time, read through the real
// CloudWatch client; when one goes into ALARM, the rotation is rolled back,
// database included. No HealthCheckUrl is needed.
func TestBakeAlarms(t *testing.T) {
	for _, tt := range []struct {
		name   string
		flip   bool // the alarm goes into ALARM after the first check
		want   string
		errTyp string
	}{
		{"alarm stays OK", false, "SUCCEEDED", ""},
		{"alarm goes into ALARM during the bake", true, "FAILED", faults.NameTestFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			withFaults(t)
			alarm := "it-api-5xx-" + uuid.NewString()[:8]
			env.Alarms.SetAlarm(alarm, cwlocal.OK)
			t.Cleanup(func() { env.Alarms.DeleteAlarm(alarm) })
			s := newScenario(t, "operations: rollback and bake")
			before := env.Alarms.Calls()
			if tt.flip {
				stop := make(chan struct{})
				t.Cleanup(func() { close(stop) })
				go func() {
					for env.Alarms.Calls() == before {
						select {
						case <-stop:
							return
						case <-time.After(20 * time.Millisecond):
						}
					}
					env.Alarms.SetAlarm(alarm, cwlocal.Alarm)
				}()
			}
			x := s.run(map[string]any{"BakeAlarms": []string{alarm}, "BakeSeconds": 3})
			if x.Status != tt.want {
				t.Fatalf("ended %s %s (%s), want %s", x.Status, x.Error, x.Cause, tt.want)
			}
			if n := env.Alarms.Calls() - before; n < 2 {
				t.Errorf("the alarms were read %d times in a 3 s bake", n)
			}
			j := s.journal()
			switch tt.want {
			case "SUCCEEDED":
				if !slices.Contains(j, ledger.Verified) || s.current() == s.orig {
					t.Errorf("journal %v, AWSCURRENT %s", j, s.current())
				}
			default:
				if x.Error != tt.errTyp || j[len(j)-1] != ledger.RolledBack || s.current() != s.orig {
					t.Errorf("error %s, journal %v, AWSCURRENT %s: want a rollback", x.Error, j, s.current())
				}
				if !strings.Contains(x.Cause, alarm) {
					t.Errorf("the cause does not name the alarm %s: %s", alarm, x.Cause)
				}
				if err := env.CanLogin(s.ctx, s.arn, s.orig, "AWSCURRENT"); err != nil {
					t.Errorf("the original password does not log in after the rollback: %v", err)
				}
			}
			s.invariants(x)
		})
	}
}

// TestBakeAlarmMissing: an alarm that does not exist is an InputError that
// names it; the rotation, already finished, is rolled back.
func TestBakeAlarmMissing(t *testing.T) {
	withFaults(t)
	alarm := "it-missing-" + uuid.NewString()[:8]
	s := newScenario(t, "operations: rollback and bake")
	x := s.run(map[string]any{"BakeAlarms": []string{alarm}})
	if x.Status != "FAILED" || x.Error != faults.NameInput || !strings.Contains(x.Cause, alarm) {
		t.Fatalf("ended %s %s (%s), want FAILED InputError naming %s", x.Status, x.Error, x.Cause, alarm)
	}
	if j := s.journal(); j[len(j)-1] != ledger.RolledBack || s.current() != s.orig {
		t.Errorf("journal %v, AWSCURRENT %s: want a rollback", j, s.current())
	}
	if err := env.CanLogin(s.ctx, s.arn, s.orig, "AWSCURRENT"); err != nil {
		t.Errorf("the original password does not log in after the rollback: %v", err)
	}
	s.invariants(x)
}
