package eventslocal_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/integration/eventslocal"
	"github.com/secretsaga/secretsaga/integration/smlocal"
)

// The Secrets Manager emulator's CloudTrail records reach a rule on the local
// default bus as EventBridge delivers them: the envelope's source and
// detail-type, the record as detail.
func TestCloudTrailThroughRule(t *testing.T) {
	bus, _, err := eventslocal.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	sm, url, err := smlocal.Start(smlocal.Options{Trail: func(r smlocal.TrailRecord) {
		bus.Deliver(eventslocal.Entry{Time: r.Time, Source: smlocal.TrailSource, DetailType: smlocal.TrailDetailType, Detail: r.Detail})
	}, Principals: map[string]string{"AKIDAPP": "arn:aws:iam::000000000000:role/app"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	var mu sync.Mutex
	var got []eventslocal.Envelope
	err = bus.PutRule(eventslocal.Rule{Name: "reads", State: eventslocal.EnabledWithAllCloudTrailME,
		Pattern: `{"source":["aws.secretsmanager"],"detail-type":["AWS API Call via CloudTrail"],"detail":{"eventSource":["secretsmanager.amazonaws.com"],"eventName":["GetSecretValue"]}}`,
		Target: func(_ context.Context, raw json.RawMessage) error {
			var env eventslocal.Envelope
			if err := json.Unmarshal(raw, &env); err != nil {
				return err
			}
			mu.Lock()
			got = append(got, env)
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	c := secretsmanager.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDAPP", "s", "")},
		func(o *secretsmanager.Options) { o.BaseEndpoint = &url })
	ctx := context.Background()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	bus.Wait()
	if len(got) != 1 {
		t.Fatalf("rule got %d events, want the one GetSecretValue", len(got))
	}
	var rec smlocal.Record
	if err := json.Unmarshal(got[0].Detail, &rec); err != nil {
		t.Fatal(err)
	}
	if got[0].Source != "aws.secretsmanager" || got[0].DetailType != "AWS API Call via CloudTrail" || got[0].Version != "0" ||
		rec.EventName != "GetSecretValue" || rec.UserIdentity.ARN != "arn:aws:sts::000000000000:assumed-role/app/AKIDAPP" {
		t.Errorf("event = %+v, record = %+v", got[0], rec)
	}
	if n := len(bus.ServiceEntries()); n != 2 {
		t.Errorf("%d CloudTrail events on the bus, want 2 (CreateSecret, GetSecretValue)", n)
	}
}
