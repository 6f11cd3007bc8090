package statemachines

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/faults"
)

func loadEphemeral(t *testing.T) machine {
	t.Helper()
	var m machine
	if err := json.Unmarshal(Ephemeral, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEphemeralStructure: the short-lived login machine follows the
// rotation saga's conventions (every Task retries RetryableError and the
// Lambda platform's errors with bounded jittered backoff and catches
// States.ALL last; only error names of the taxonomy), every state is
// reachable, a failed issue compensates (revokes what it made), the wait
// loops through the ledger's expiry, and a failed revocation alerts and
// fails.
func TestEphemeralStructure(t *testing.T) {
	m := loadEphemeral(t)
	for n, s := range m.States {
		for _, x := range s.successors() {
			if _, ok := m.States[x]; !ok {
				t.Errorf("%s → %q: no such state", n, x)
			}
		}
		if s.Type != "Task" {
			continue
		}
		var covered []string
		for _, r := range s.Retry {
			covered = append(covered, r.ErrorEquals...)
			if r.MaxAttempts < 1 || r.MaxAttempts > 10 || r.BackoffRate < 1 || r.JitterStrategy != "FULL" {
				t.Errorf("task %s: retry %+v is not bounded exponential backoff with jitter", n, r)
			}
		}
		for _, e := range append([]string{faults.NameRetryable}, lambdaPlatformErrors...) {
			if !slices.Contains(covered, e) {
				t.Errorf("task %s does not retry %s", n, e)
			}
		}
		if len(s.Catch) == 0 || !slices.Equal(s.Catch[len(s.Catch)-1].ErrorEquals, []string{"States.ALL"}) {
			t.Errorf("task %s: the last Catch must be States.ALL", n)
		}
		for _, c := range s.Catch {
			for _, e := range c.ErrorEquals {
				if !strings.HasPrefix(e, "States.") && !slices.Contains(faults.Names, e) {
					t.Errorf("task %s catches %q, not in shared/faults", n, e)
				}
			}
		}
		if !(strings.HasPrefix(s.Resource, "${Ephemeral") && strings.HasSuffix(s.Resource, "FunctionArn}")) {
			t.Errorf("task %s resource %q is not an ephemeral function placeholder", n, s.Resource)
		}
	}
	seen := m.reach(m.StartAt)
	for n := range m.States {
		if !seen[n] {
			t.Errorf("state %s is unreachable", n)
		}
	}
	catchAll := func(n string) string {
		for _, c := range m.States[n].Catch {
			if slices.Contains(c.ErrorEquals, "States.ALL") {
				return c.Next
			}
		}
		return ""
	}
	if got := catchAll("Issue"); got != "CompensateIssue" {
		t.Errorf("a failed Issue goes to %q, want CompensateIssue", got)
	}
	if got := catchAll("Revoke"); got != "RevocationFailed" {
		t.Errorf("a failed Revoke goes to %q, want RevocationFailed", got)
	}
	if m.States["WaitUntilExpiry"].Type != "Wait" || m.States["WaitUntilExpiry"].Next != "CheckExpiry" {
		t.Error("WaitUntilExpiry must wait, then read the ledger's expiry (CheckExpiry)")
	}
	if !m.reach("CheckExpiry")["WaitUntilExpiry"] {
		t.Error("a renewal must lead back to WaitUntilExpiry")
	}
	for n := range m.reach("CompensateIssue") {
		if m.States[n].Type == "Succeed" {
			t.Errorf("a failed issue can reach Succeed state %s", n)
		}
	}
	for n := range m.reach("RevocationFailed") {
		if m.States[n].Type == "Succeed" {
			t.Errorf("a failed revocation can reach Succeed state %s", n)
		}
	}
	want := []string{"EphemeralAlertFunctionArn", "EphemeralIssueFunctionArn", "EphemeralRevokeFunctionArn", "EphemeralStatusFunctionArn"}
	if got := Placeholders(Ephemeral); !slices.Equal(got, want) {
		t.Errorf("placeholders = %v, want %v", got, want)
	}
}
