package rotation_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/infra/rotation"
	"github.com/secretsaga/secretsaga/statemachines"
)

func withEphemeral(t *testing.T) *synthesized {
	return synth(t, "ephemeral", rotation.RotationProps{Ephemeral: rotation.EphemeralProps{Enabled: true, SweepSchedule: "rate(2 minutes)"}})
}

// TestEphemeral: with short-lived logins enabled, their five functions,
// each role granting exactly the recorded calls (plus the named
// exceptions), the state machine invoking its four, the sweeper's schedule,
// and Revocation Failed routed to the alert topic. Off by default.
func TestEphemeral(t *testing.T) {
	if m := defaults(t).doc.machines(t); m["ephemeral"] != "" {
		t.Fatal("short-lived logins are deployed by default")
	}
	d := withEphemeral(t).doc
	fns := d.functions(t)
	rec := readRecording(t)
	exceptions := maps.Clone(grantExceptions)
	maps.Copy(exceptions, rotation.EphemeralGrantExceptions)
	for _, h := range rotation.EphemeralHandlers {
		id, ok := fns[h.Name]
		if !ok {
			t.Errorf("no function %s", h.Name)
			continue
		}
		granted := map[string]bool{}
		for _, st := range d.statements(t, ref(d.Resources[id].Properties["Role"])) {
			for _, a := range st.actions() {
				granted[a] = true
			}
			// Every Secrets Manager grant is held to the group's tag.
			for _, a := range st.actions() {
				if strings.HasPrefix(a, "secretsmanager:") && a != "secretsmanager:ListSecrets" && !strings.Contains(jsonString(st.Condition), "Tag/") {
					t.Errorf("%s: %s without a tag condition: %s", h.Name, a, jsonString(st))
				}
			}
		}
		recorded, ok := rec[h.Name]
		if !ok {
			t.Errorf("%s: not in the recording", h.Name)
			continue
		}
		for _, msg := range grantProblems(h.Name, granted, recorded, exceptions) {
			t.Error(msg)
		}
		vars := d.Resources[id].Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
		for _, k := range []string{"LEDGER_TABLE", "EVENT_BUS_NAME", "LEDGER_RETENTION_DAYS"} {
			if vars[k] == nil {
				t.Errorf("%s: no %s", h.Name, k)
			}
		}
	}
	m := d.machines(t)
	if m["ephemeral"] == "" {
		t.Fatal("no short-lived login state machine")
	}
	subs := jsonString(d.Resources[m["ephemeral"]].Properties["DefinitionSubstitutions"])
	for _, p := range statemachines.Placeholders(statemachines.Ephemeral) {
		if !strings.Contains(subs, p) {
			t.Errorf("the state machine's substitutions lack %s: %s", p, subs)
		}
	}
	sweeper := fns["ephemeralsweep"]
	found := 0
	for _, r := range d.ofType("AWS::Scheduler::Schedule") {
		tg := r.Properties["Target"].(map[string]any)
		if jsonString(tg["Arn"]) == jsonString(map[string]any{"Fn::GetAtt": []any{sweeper, "Arn"}}) {
			found++
			if r.Properties["ScheduleExpression"] != "rate(2 minutes)" {
				t.Errorf("sweeper schedule %s", jsonString(r.Properties))
			}
		}
	}
	if found != 1 {
		t.Errorf("%d sweeper schedules, want 1", found)
	}
	routed := false
	for _, r := range d.ofType("AWS::Events::Rule") {
		if strings.Contains(jsonString(r.Properties["EventPattern"]), "Revocation Failed") && strings.Contains(jsonString(r.Properties["Targets"]), "Alerts") {
			routed = true
		}
	}
	if !routed {
		t.Error("Revocation Failed is not routed to the alert topic")
	}
}
