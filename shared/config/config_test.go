package config

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secretsaga/secretsaga/shared/rotation"
)

func TestAlarmNames(t *testing.T) {
	if got := AlarmNames(" api-5xx, api latency ,,"); !slices.Equal(got, []string{"api-5xx", "api latency"}) {
		t.Fatalf("AlarmNames = %q", got)
	}
	if got := AlarmNames(""); got != nil {
		t.Fatalf("AlarmNames(\"\") = %q", got)
	}
}

// The verify function's BAKE_ALARM_NAMES reaches the Service, with a
// CloudWatch client to read them.
func TestFromEnvReadsBakeAlarmNames(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AK")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SK")
	t.Setenv(EnvLedgerTable, "ledger")
	t.Setenv(EnvBakeAlarmNames, "api-5xx,api-latency")
	svc, err := FromEnv(context.Background(), "verify")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(svc.BakeAlarmNames, []string{"api-5xx", "api-latency"}) || svc.Alarms == nil {
		t.Fatalf("BakeAlarmNames %q, Alarms %v", svc.BakeAlarmNames, svc.Alarms)
	}
}

func TestRepairPolicy(t *testing.T) {
	for _, tt := range []struct {
		env     map[string]string
		want    rotation.RepairPolicy
		wantErr string
	}{
		{env: nil, want: rotation.RepairPolicy{}},
		{env: map[string]string{EnvRepairBackoff: "2s", EnvRepairMaxBackoff: " 10s ", EnvRepairAlertAfter: "1h"},
			want: rotation.RepairPolicy{Backoff: 2 * time.Second, MaxBackoff: 10 * time.Second, AlertAfter: time.Hour}},
		{env: map[string]string{EnvRepairMaxBackoff: "12h"}, want: rotation.RepairPolicy{MaxBackoff: 12 * time.Hour}},
		{env: map[string]string{EnvRepairBackoff: "an hour"}, wantErr: EnvRepairBackoff},
		{env: map[string]string{EnvRepairAlertAfter: "-1h"}, wantErr: EnvRepairAlertAfter},
	} {
		got, err := RepairPolicy(func(k string) string { return tt.env[k] })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want one naming %s", tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%v: %+v, %v; want %+v", tt.env, got, err, tt.want)
		}
	}
}

// The repair function's REPAIR_* variables reach the Service.
func TestFromEnvReadsRepairPolicy(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AK")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SK")
	t.Setenv(EnvLedgerTable, "ledger")
	t.Setenv(EnvRepairBackoff, "2s")
	svc, err := FromEnv(context.Background(), "repair")
	if err != nil {
		t.Fatal(err)
	}
	if svc.RepairPolicy.Backoff != 2*time.Second {
		t.Fatalf("RepairPolicy %+v", svc.RepairPolicy)
	}
	t.Setenv(EnvRepairBackoff, "soon")
	if _, err := FromEnv(context.Background(), "repair"); err == nil {
		t.Fatal("a malformed REPAIR_BACKOFF was accepted")
	}
}
