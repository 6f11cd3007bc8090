// Package eventbus publishes shared/events' outcome events to Amazon
// EventBridge. It is the only package that names EventBridge's types, so
// that a function that publishes nothing does not link the client.
package eventbus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/secretsaga/secretsaga/shared/events"
)

// API is the part of *eventbridge.Client used here.
type API interface {
	PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Bus publishes to one event bus.
type Bus struct {
	api  API
	name string
}

// New returns a publisher to the named bus ("" is the default bus).
func New(api API, name string) *Bus {
	if name == "" {
		name = "default"
	}
	return &Bus{api: api, name: name}
}

// Publish sends e. PutEvents can accept the call and still reject the entry,
// so the per-entry result is checked too.
func (b *Bus) Publish(ctx context.Context, e events.Event) error {
	body, err := json.Marshal(e.Detail)
	if err != nil {
		return err
	}
	out, err := b.api.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		EventBusName: &b.name, Source: aws.String(events.Source), DetailType: &e.DetailType,
		Detail: aws.String(string(body)), Resources: []string{e.Detail.SecretARN},
	}}})
	if err != nil {
		return fmt.Errorf("publish %q: %w", e.DetailType, err)
	}
	if out.FailedEntryCount > 0 && len(out.Entries) > 0 {
		return fmt.Errorf("publish %q: entry rejected: %s", e.DetailType, aws.ToString(out.Entries[0].ErrorCode))
	}
	return nil
}

// Buses returns the events.Buses of api: New(api, name) for each name.
func Buses(api API) events.Buses {
	return func(name string) events.Publisher { return New(api, name) }
}
