package ephemeral

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/engines"
)

func TestParseTemplate(t *testing.T) {
	reg := engines.Registry(nil)
	tagged := map[string]string{TagTemplate: "ci"}
	for _, c := range []struct {
		name  string
		value string
		tags  map[string]string
		want  string // in the InputError; "" means it parses
	}{
		{"ok", `{"engine":"postgres","host":"db","masterarn":"m","role":"r","default_ttl":"10m","max_ttl":"2h"}`, tagged, ""},
		{"untagged", `{"engine":"postgres","host":"db","masterarn":"m","role":"r"}`, nil, TagTemplate},
		{"no master", `{"engine":"postgres","host":"db","role":"r"}`, tagged, "masterarn"},
		{"no role", `{"engine":"postgres","host":"db","masterarn":"m"}`, tagged, `no "role"`},
		{"no host", `{"engine":"postgres","masterarn":"m","role":"r"}`, tagged, `"host"`},
		{"unknown engine", `{"engine":"oracle","host":"db","masterarn":"m","role":"r"}`, tagged, "engine"},
		{"max ttl too long", `{"engine":"redis","host":"db","masterarn":"m","role":"r","max_ttl":"48h"}`, tagged, "max_ttl"},
		{"max ttl not a duration", `{"engine":"redis","host":"db","masterarn":"m","role":"r","max_ttl":"1 hour"}`, tagged, "max_ttl"},
		{"role not a string", `{"engine":"redis","host":"db","masterarn":"m","role":7}`, tagged, "JSON strings"},
		{"not json", `role=r`, tagged, "does not parse"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tpl, err := ParseTemplate("tpl", "arn:tpl", c.value, c.tags, reg)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tpl.Role != "r" || tpl.Default != 10*time.Minute || tpl.Max != 2*time.Hour || tpl.Value.Port != 5432 {
					t.Fatalf("template = %+v", tpl)
				}
				return
			}
			var ie *faults.InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want an InputError mentioning %q", err, c.want)
			}
		})
	}
}

func TestTTLs(t *testing.T) {
	tpl := &Template{Default: 15 * time.Minute, Max: time.Hour}
	for _, c := range []struct {
		ttl, max         string
		wantTTL, wantMax time.Duration
		err              string
	}{
		{"", "", 15 * time.Minute, time.Hour, ""},
		{"30m", "", 30 * time.Minute, time.Hour, ""},
		{"30m", "45m", 30 * time.Minute, 45 * time.Minute, ""},
		{"61m", "", 0, 0, "above the max TTL"},
		{"30m", "20m", 0, 0, "above the max TTL"},
		{"10m", "2h", 0, 0, "above the template's max_ttl"},
		{"1s", "", 0, 0, "at least"},
		{"-5m", "", 0, 0, "at least"},
		{"soon", "", 0, 0, "duration"},
	} {
		ttl, max, err := tpl.TTLs("tpl", c.ttl, c.max)
		if c.err != "" {
			if !strings.Contains(err.Error(), c.err) {
				t.Errorf("TTLs(%q, %q): %v, want %q", c.ttl, c.max, err, c.err)
			}
			continue
		}
		if err != nil || ttl != c.wantTTL || max != c.wantMax {
			t.Errorf("TTLs(%q, %q) = %v, %v, %v", c.ttl, c.max, ttl, max, err)
		}
	}
}

func TestLeaseName(t *testing.T) {
	a, err := LeaseName("3F8A1C2E-1111-4000-8000-000000000001")
	if err != nil || a != "ss_eph_3f8a1c2e11114000" || !target.IsEphemeralName(a) {
		t.Fatalf("from a UUID: %q, %v", a, err)
	}
	if b, err := LeaseName(a); err != nil || b != a {
		t.Fatalf("a name is kept: %q, %v", b, err)
	}
	n, err := LeaseName("")
	if err != nil || !target.IsEphemeralName(n) || len(n) > 32 {
		t.Fatalf("new name %q, %v", n, err)
	}
	for _, bad := range []string{"robert'); drop table", "ss_eph_short", "xyz"} {
		if _, err := LeaseName(bad); err == nil {
			t.Errorf("LeaseName(%q) accepted", bad)
		}
	}
}

func TestCeilSecondAndTagValue(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 1, time.FixedZone("x", 3600))
	if got := ceilSecond(at); got.Format(time.RFC3339) != "2026-01-02T02:04:06Z" {
		t.Errorf("ceilSecond = %s", got.Format(time.RFC3339))
	}
	if got := tagValue("arn:aws:iam::1:role/ci job*1"); got != "arn:aws:iam::1:role/ci job_1" {
		t.Errorf("tagValue = %q", got)
	}
	if got := tagValue(""); got != "unknown" {
		t.Errorf("tagValue(\"\") = %q", got)
	}
}
