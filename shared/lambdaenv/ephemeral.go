package lambdaenv

import (
	"context"
	"errors"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/secretsaga/secretsaga/shared/awsenv"
	"github.com/secretsaga/secretsaga/shared/ephemeral"
	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/target"
)

// EphemeralClients are the clients of a short-lived login function. Only
// Ledger is required: ephemeralstatus reads the ledger and nothing else.
type EphemeralClients struct {
	Secrets ephemeral.SecretsAPI
	Ledger  ledger.API
	Engines *target.Registry
	// Events is nil for a function that publishes nothing (a Publish fails
	// with ErrNoEventBus); see SagaClients.Events.
	Events events.Buses
}

// Ephemeral builds the ephemeral.Service the function actor runs, from the
// environment (the ledger table, its retention, the bus) and the clients.
func Ephemeral(ctx context.Context, actor string, clients func(aws.Config) EphemeralClients) (*ephemeral.Service, error) {
	cfg, err := awsenv.Load(ctx)
	if err != nil {
		return nil, err
	}
	return EphemeralFrom(os.Getenv, actor, clients(cfg))
}

// EphemeralFrom is Ephemeral with the environment read through getenv and
// the clients made.
func EphemeralFrom(getenv func(string) string, actor string, c EphemeralClients) (*ephemeral.Service, error) {
	table := getenv(functions.EnvLedgerTable)
	if table == "" {
		return nil, errors.New("config: the ledger table name is empty; set " + functions.EnvLedgerTable)
	}
	retention, err := LedgerRetention(getenv)
	if err != nil {
		return nil, err
	}
	svc := &ephemeral.Service{
		Secrets: c.Secrets,
		Ledger:  ledger.New(c.Ledger, table, ledger.Options{Retention: retention}),
		Engines: c.Engines,
		Events:  noBus{},
		Actor:   actor,
		Log:     Logger(),
	}
	if c.Engines == nil {
		svc.Engines = &target.Registry{}
	}
	if c.Events != nil {
		svc.Events = c.Events(getenv(functions.EnvEventBus))
	}
	return svc, nil
}
