package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/secretsaga/secretsaga/shared/events"
)

// fakeAPI records the entries it is sent and answers with out or err.
type fakeAPI struct {
	got []types.PutEventsRequestEntry
	out *eventbridge.PutEventsOutput
	err error
}

func (f *fakeAPI) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.got = append(f.got, in.Entries...)
	if f.out == nil {
		return &eventbridge.PutEventsOutput{}, f.err
	}
	return f.out, f.err
}

func TestPublish(t *testing.T) {
	const arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-AbCdEf"
	e := events.Event{DetailType: events.RotationSucceeded, Detail: events.Detail{SecretARN: arn, Severity: "info"}}
	tests := []struct {
		name    string
		bus     string
		api     *fakeAPI
		wantBus string
		wantErr string
	}{
		{name: "default bus", api: &fakeAPI{}, wantBus: "default"},
		{name: "named bus", bus: "ops", api: &fakeAPI{}, wantBus: "ops"},
		{name: "call fails", api: &fakeAPI{err: errors.New("boom")}, wantBus: "default", wantErr: `publish "Rotation Succeeded": boom`},
		{name: "entry rejected", api: &fakeAPI{out: &eventbridge.PutEventsOutput{FailedEntryCount: 1,
			Entries: []types.PutEventsResultEntry{{ErrorCode: aws.String("InternalFailure")}}}},
			wantBus: "default", wantErr: `publish "Rotation Succeeded": entry rejected: InternalFailure`},
		{name: "entry rejected, no result entries", api: &fakeAPI{out: &eventbridge.PutEventsOutput{FailedEntryCount: 1}},
			wantBus: "default", wantErr: `publish "Rotation Succeeded": entry rejected: unknown`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Buses(tt.api)(tt.bus).Publish(context.Background(), e)
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Publish = %v, want error %q", err, tt.wantErr)
			}
			if len(tt.api.got) != 1 {
				t.Fatalf("%d entries sent, want 1", len(tt.api.got))
			}
			got := tt.api.got[0]
			if aws.ToString(got.EventBusName) != tt.wantBus || aws.ToString(got.Source) != events.Source ||
				aws.ToString(got.DetailType) != e.DetailType || len(got.Resources) != 1 || got.Resources[0] != arn {
				t.Errorf("entry = bus %q source %q type %q resources %v", aws.ToString(got.EventBusName), aws.ToString(got.Source), aws.ToString(got.DetailType), got.Resources)
			}
			var d events.Detail
			if err := json.Unmarshal([]byte(aws.ToString(got.Detail)), &d); err != nil || d != e.Detail {
				t.Errorf("detail = %s (%v), want %+v", aws.ToString(got.Detail), err, e.Detail)
			}
		})
	}
}
