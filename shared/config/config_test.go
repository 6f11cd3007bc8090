package config

import (
	"context"
	"slices"
	"testing"
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
