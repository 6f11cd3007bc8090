package eventslocal

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/secretsaga/secretsaga/shared/eventbus"
	"github.com/secretsaga/secretsaga/shared/events"
)

// The product's publisher, through the real SDK client, lands here.
func TestPublishThroughSDK(t *testing.T) {
	s, url, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := eventbridge.New(eventbridge.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AK", "SK", "")})
	bus := eventbus.New(client, "")
	err = bus.Publish(context.Background(), events.Event{DetailType: events.RotationSucceeded,
		Detail: events.Detail{SecretARN: "arn:x", VersionID: "v2", Severity: "info"}})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Entries()
	if len(got) != 1 || got[0].DetailType != events.RotationSucceeded || got[0].Source != events.Source || got[0].EventBusName != "default" {
		t.Fatalf("entries = %+v", got)
	}
}
