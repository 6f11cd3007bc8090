//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/shared/access"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// The principals of the access audit's scenarios: the emulator names a
// request's caller from its access key id.
const (
	readerKey   = "AKIDAPPREADER"
	intruderKey = "AKIDINTRUDER"
	deniedKey   = "AKIDMALLORY"
	readerRole  = "arn:aws:iam::000000000000:role/app-reader"
	deniedRole  = "arn:aws:iam::000000000000:role/mallory"
	// The product's own functions sign with the local stack's key, which
	// the emulator names its default principal.
	productPrincipal = "arn:aws:iam::000000000000:user/smlocal-default"
)

func smClientAs(key string) *secretsmanager.Client {
	cfg := env.AWS.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(key, "local", "")
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = &env.SMURL })
}

// auditEvents returns the audit's events about arn of one detail type.
func auditEvents(arn, detailType string) []access.Alert {
	var out []access.Alert
	for _, e := range env.Events.Entries() {
		var a access.Alert
		if e.DetailType == detailType && json.Unmarshal(e.Detail, &a) == nil && a.SecretARN == arn {
			out = append(out, a)
		}
	}
	return out
}

// TestAccessAudit runs the whole path: the emulator's CloudTrail records,
// the local EventBridge's rules (shared/access/accessrule), the audit's
// handler, the ledger in DynamoDB Local and the events it publishes.
func TestAccessAudit(t *testing.T) {
	withFaults(t)
	env.SM.SetPrincipal(readerKey, readerRole)
	env.SM.SetPrincipal(intruderKey, "arn:aws:iam::000000000000:role/intruder")
	env.SM.SetPrincipal(deniedKey, deniedRole)
	if _, err := env.StartAccessAudit(productPrincipal); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.StopAccessAudit)
	s := newScenarioWith(t, "access audit", "aud_", env.PostgresAlternatingSecret)
	_, err := env.SMClient.TagResource(s.ctx, &secretsmanager.TagResourceInput{SecretId: &s.arn, Tags: []smtypes.Tag{
		{Key: aws.String(access.GroupTag), Value: aws.String(local.AccessAuditGroup)},
		{Key: aws.String(access.ReadersTag), Value: aws.String("app-reader")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	reads := ledger.NewReads(env.DDB, local.Table, 0)
	accessBy := func(principal string) []ledger.Access {
		all, err := reads.Accesses(s.ctx, s.arn)
		if err != nil {
			t.Fatal(err)
		}
		var out []ledger.Access
		for _, a := range all {
			if strings.Contains(a.Principal, principal) {
				out = append(out, a)
			}
		}
		return out
	}
	read := func(key string) error {
		_, err := smClientAs(key).GetSecretValue(s.ctx, &secretsmanager.GetSecretValueInput{SecretId: &s.arn})
		env.Events.Wait()
		return err
	}

	t.Run("declared reader: recorded, no alert", func(t *testing.T) {
		if err := read(readerKey); err != nil {
			t.Fatal(err)
		}
		got := accessBy("assumed-role/app-reader/")
		if len(got) != 1 || got[0].Verdict != access.VerdictDeclared || got[0].VersionID != s.orig || got[0].Consumer != readerRole {
			t.Fatalf("accesses = %+v, want one declared read of %s", got, s.orig)
		}
		if a := auditEvents(s.arn, access.UnauthorizedSecretAccess); len(a) != 0 {
			t.Errorf("alerts for a declared reader: %+v", a)
		}
	})
	t.Run("undeclared principal: Unauthorized Secret Access", func(t *testing.T) {
		if err := read(intruderKey); err != nil {
			t.Fatal(err)
		}
		a := auditEvents(s.arn, access.UnauthorizedSecretAccess)
		if len(a) != 1 || !strings.Contains(a[0].Principal, "assumed-role/intruder/") || a[0].Severity != "critical" || a[0].Verdict != access.VerdictUndeclared {
			t.Fatalf("alerts = %+v, want one for the intruder", a)
		}
		if got := accessBy("assumed-role/intruder/"); len(got) != 1 || got[0].AlertPending {
			t.Errorf("intruder's accesses = %+v", got)
		}
	})
	t.Run("denied call: Unauthorized Secret Access", func(t *testing.T) {
		policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"` + deniedRole + `"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`
		if _, err := env.SMClient.PutResourcePolicy(s.ctx, &secretsmanager.PutResourcePolicyInput{SecretId: &s.arn, ResourcePolicy: &policy}); err != nil {
			t.Fatal(err)
		}
		if err := read(deniedKey); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
			t.Fatalf("denied read: err = %v", err)
		}
		var denied []access.Alert
		for _, a := range auditEvents(s.arn, access.UnauthorizedSecretAccess) {
			if a.ErrorCode == "AccessDenied" {
				denied = append(denied, a)
			}
		}
		if len(denied) != 1 || !strings.Contains(denied[0].Principal, "assumed-role/mallory/") || denied[0].Verdict != access.VerdictDenied {
			t.Fatalf("denied alerts = %+v", denied)
		}
		if got := accessBy("assumed-role/mallory/"); len(got) != 1 || got[0].VersionID != "" {
			t.Errorf("denied accesses = %+v (a denied call reads no version)", got)
		}
	})
	t.Run("a reader that read before a rotation: Stale Consumer before the next", func(t *testing.T) {
		x := s.run(map[string]any{})
		if x.Status != "SUCCEEDED" {
			t.Fatalf("rotation %s: %s %s", x.Status, x.Error, x.Cause)
		}
		env.Events.Wait()
		stale := auditEvents(s.arn, access.StaleConsumerEvent)
		var mine []access.Alert
		for _, a := range stale {
			if a.Consumer == readerRole {
				mine = append(mine, a)
			}
		}
		// Alternating users: the reader holds AWSPREVIOUS, whose user
		// keeps working until the next rotation sets its password.
		if len(mine) != 1 || mine[0].VersionID != s.orig || mine[0].VersionsBehind != 1 || !mine[0].BreaksAtNextRotation ||
			mine[0].AlreadyInvalid || mine[0].Severity != "warning" {
			t.Fatalf("Stale Consumer events = %+v, want one for the reader, breaking at the next rotation", stale)
		}
		// The product's own reads are recorded, trusted, never consumers.
		consumers, err := reads.Consumers(s.ctx, s.arn)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range consumers {
			if c.Consumer == productPrincipal {
				t.Errorf("the product's own principal is a consumer: %+v", c)
			}
		}
		if len(accessBy("smlocal-default")) == 0 {
			t.Error("the rotation's reads were not recorded")
		}
		// Reading again makes the reader fresh.
		if err := read(readerKey); err != nil {
			t.Fatal(err)
		}
		consumers, _ = reads.Consumers(s.ctx, s.arn)
		st, _ := env.Stages(context.Background(), s.arn)
		for _, c := range access.Assess(consumers, st, true) {
			if c.Consumer.Consumer == readerRole && c.Stale {
				t.Errorf("the reader read again and is still stale: %+v", c)
			}
		}
	})
	if errs := env.Events.TargetErrors(); len(errs) > 0 {
		t.Errorf("the audit's handler failed: %+v", errs)
	}
	s.invariants()
}
