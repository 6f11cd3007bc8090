package lambdaenv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/secretsaga/secretsaga/shared/eventbus"
	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/native"
)

type fakeBus struct{ calls int }

func (b *fakeBus) PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	b.calls++
	return &eventbridge.PutEventsOutput{}, nil
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// A saga function gets the table, retention, alarms and repair policy from
// its environment, a bus only when its main.go makes an EventBridge client,
// and without one every Publish fails with ErrNoEventBus instead of a nil
// dereference.
func TestSagaFrom(t *testing.T) {
	vars := map[string]string{functions.EnvLedgerTable: "ledger", functions.EnvEventBus: "bus",
		functions.EnvLedgerRetentionDays: "400", functions.EnvBakeAlarmNames: "a, b", functions.EnvRepairBackoff: "2m"}
	svc, err := SagaFrom(env(vars), "verify", SagaClients{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Actor != "verify" || len(svc.BakeAlarmNames) != 2 || svc.RepairPolicy.Backoff != 2*time.Minute || svc.Alarms != nil {
		t.Errorf("service %+v", svc)
	}
	if err := svc.Events.Publish(context.Background(), events.Event{}); !errors.Is(err, ErrNoEventBus) {
		t.Errorf("Publish without a bus: %v, want ErrNoEventBus", err)
	}
	bus := &fakeBus{}
	svc, err = SagaFrom(env(vars), "releaselease", SagaClients{Events: eventbus.Buses(bus)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Events.Publish(context.Background(), events.Event{DetailType: events.RotationSucceeded}); err != nil || bus.calls != 1 {
		t.Errorf("Publish: %v, %d PutEvents", err, bus.calls)
	}
	for name, bad := range map[string]string{functions.EnvLedgerTable: "", functions.EnvLedgerRetentionDays: "a year", functions.EnvRepairBackoff: "soon"} {
		m := map[string]string{}
		for k, v := range vars {
			m[k] = v
		}
		m[name] = bad
		if _, err := SagaFrom(env(m), "repair", SagaClients{}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: %v, want an error naming it", name, bad, err)
		}
	}
}

// The fleet and native constructors read what shared/functions lists for
// them and make only the clients they are given.
func TestFleetAndNative(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AK")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SK")
	ctx := context.Background()
	fl, err := Fleet(ctx, nil)
	if err != nil || fl.Secrets != nil {
		t.Fatalf("Fleet(nil): %+v, %v", fl, err)
	}
	if err := fl.Events.Publish(ctx, events.Event{}); !errors.Is(err, ErrNoEventBus) {
		t.Errorf("fleet Publish without a bus: %v", err)
	}
	bus := &fakeBus{}
	t.Setenv(functions.EnvEventBus, "bus")
	fr, err := FleetReport(ctx, func(aws.Config) events.Buses { return eventbus.Buses(bus) })
	if err != nil {
		t.Fatal(err)
	}
	if err := fr.Events.Publish(ctx, events.Event{DetailType: events.FleetRotationFailed}); err != nil || bus.calls != 1 {
		t.Errorf("FleetReport Publish: %v, %d PutEvents", err, bus.calls)
	}
	t.Setenv(functions.EnvStateMachineArn, "")
	if _, err := Native(ctx, func(aws.Config) native.SFN { return nil }); err == nil || !strings.Contains(err.Error(), functions.EnvStateMachineArn) {
		t.Errorf("Native without %s: %v", functions.EnvStateMachineArn, err)
	}
	t.Setenv(functions.EnvStateMachineArn, "arn:aws:states:us-east-1:111122223333:stateMachine:rotation")
	if svc, err := Native(ctx, func(aws.Config) native.SFN { return nil }); err != nil || svc.StateMachineArn == "" {
		t.Errorf("Native: %+v, %v", svc, err)
	}
}
