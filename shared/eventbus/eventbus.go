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
func New(api API, name string) *Bus { return &Bus{api: api, name: name} }

// Publish sends e (Put with e's detail type, secret and detail).
func (b *Bus) Publish(ctx context.Context, e events.Event) error {
	return Put(ctx, b.api, b.name, e.DetailType, e.Detail.SecretARN, e.Detail)
}

// Put sends one event of detailType about resource (a secret's ARN) to bus
// ("" is the default bus), detail as its JSON body, with the product's
// Source. It is the one place the product calls PutEvents: Bus for the
// outcome events, shared/access for its alerts, whose body differs.
// PutEvents can accept the call and still reject the entry, so the
// per-entry result is checked too.
func Put(ctx context.Context, api API, bus, detailType, resource string, detail any) error {
	body, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("publish %q: %w", detailType, err)
	}
	if bus == "" {
		bus = "default"
	}
	out, err := api.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		EventBusName: &bus, Source: aws.String(events.Source), DetailType: &detailType,
		Detail: aws.String(string(body)), Resources: []string{resource},
	}}})
	if err != nil {
		return fmt.Errorf("publish %q: %w", detailType, err)
	}
	if out.FailedEntryCount > 0 {
		code := "unknown"
		if len(out.Entries) > 0 {
			code = aws.ToString(out.Entries[0].ErrorCode)
		}
		return fmt.Errorf("publish %q: entry rejected: %s", detailType, code)
	}
	return nil
}

// Buses returns the events.Buses of api: New(api, name) for each name.
func Buses(api API) events.Buses {
	return func(name string) events.Publisher { return New(api, name) }
}
