package rotation_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"

	"github.com/secretsaga/secretsaga/infra/rotation"
	"github.com/secretsaga/secretsaga/shared/access/accessrule"
	"github.com/secretsaga/secretsaga/shared/functions"
)

func withAccessAudit(t *testing.T) *synthesized {
	// A dummy bootstrap, as TestMain makes for rotation.Handlers.
	dir := filepath.Join(assetDir, rotation.AccessAuditHandler.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\necho accessaudit\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return synth(t, "accessaudit", rotation.RotationProps{AccessAuditEnabled: jsii.Bool(true)})
}

// TestAccessAudit: with AccessAuditEnabled, the accessaudit function, its
// two rules on the default bus (the patterns of shared/access/accessrule, in
// the state that lets read-only management events through), EventBridge's
// permission to invoke it from those rules only, the environment
// shared/functions lists, a role granting exactly what the recorded calls
// need, and its events routed to the alert topic. Without it, none of it.
func TestAccessAudit(t *testing.T) {
	if _, ok := defaults(t).doc.functions(t)["accessaudit"]; ok {
		t.Fatal("accessaudit deployed without AccessAuditEnabled")
	}
	d := withAccessAudit(t)
	fnID, ok := d.doc.functions(t)["accessaudit"]
	if !ok {
		t.Fatal("no accessaudit function")
	}
	fn := d.doc.Resources[fnID]
	vars, _ := fn.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
	var names []string
	for k := range vars {
		names = append(names, k)
	}
	slices.Sort(names)
	want := functions.MustGet("accessaudit").Env
	slices.Sort(want)
	if !slices.Equal(names, want) || vars[functions.EnvRotationGroup] != "default" {
		t.Errorf("environment %s, want %v with ROTATION_GROUP default", jsonString(vars), want)
	}
	// The trusted principals are the other functions' roles, never its own.
	trusted := jsonString(vars[functions.EnvTrustedPrincipals])
	roleID := ref(fn.Properties["Role"])
	if !strings.Contains(trusted, "createsecretRole") || !strings.Contains(trusted, "finishsecretRole") || strings.Contains(trusted, `"`+roleID+`"`) {
		t.Errorf("%s = %s", functions.EnvTrustedPrincipals, trusted)
	}

	var rules []resource
	for _, r := range d.doc.ofType("AWS::Events::Rule") {
		if r.Properties["State"] == accessrule.State {
			rules = append(rules, r)
		}
	}
	if len(rules) != len(accessrule.Patterns) {
		t.Fatalf("%d access rules, want %d", len(rules), len(accessrule.Patterns))
	}
	var patterns []string
	for _, r := range rules {
		patterns = append(patterns, jsonString(r.Properties["EventPattern"]))
		targets := list(r.Properties["Targets"])
		if len(targets) != 1 || jsonString(targets[0].(map[string]any)["Arn"]) != jsonString(map[string]any{"Fn::GetAtt": []any{fnID, "Arn"}}) {
			t.Errorf("access rule targets %s", jsonString(targets))
		}
		if r.Properties["EventBusName"] != nil {
			t.Error("an access rule is not on the default bus (where CloudTrail's events arrive)")
		}
	}
	for _, p := range accessrule.Patterns {
		var m any
		_ = json.Unmarshal([]byte(p), &m)
		if !slices.Contains(patterns, jsonString(m)) {
			t.Errorf("no rule with pattern %s (have %v)", p, patterns)
		}
	}
	perms := 0
	for _, p := range d.doc.ofType("AWS::Lambda::Permission") {
		if p.Properties["Principal"] != "events.amazonaws.com" {
			continue
		}
		perms++
		if !strings.Contains(jsonString(p.Properties["SourceArn"]), "AccessAuditRule") || ref(p.Properties["FunctionName"]) == "" && !strings.Contains(jsonString(p.Properties["FunctionName"]), fnID) {
			t.Errorf("permission %s", jsonString(p.Properties))
		}
	}
	if perms != len(accessrule.Patterns) {
		t.Errorf("%d EventBridge permissions, want one per access rule", perms)
	}
	// Least privilege: what its recorded calls need (TestRecordedActions).
	granted := map[string]bool{}
	for _, st := range d.doc.statements(t, roleID) {
		for _, a := range st.actions() {
			granted[a] = true
		}
	}
	for _, msg := range grantProblems("accessaudit", granted, readRecording(t)["accessaudit"], grantExceptions) {
		t.Error(msg)
	}
	for _, dt := range rotation.AccessAlertDetailTypes {
		if !slices.Contains(rotation.AlertDetailTypes, dt) {
			t.Errorf("%q does not reach the alert topic", dt)
		}
	}
}
