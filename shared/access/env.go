package access

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/shared/awsenv"
	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/tracing"
)

// FromEnv wires the audit as the accessaudit function runs it, from the
// variables shared/functions lists for it and the AWS configuration in the
// environment (shared/awsenv). It does not go through shared/config, which
// links the rotation and every database driver: the audit needs none of them.
func FromEnv(ctx context.Context) (*Service, error) {
	cfg, err := awsenv.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("accessaudit: %w", err)
	}
	table := os.Getenv(functions.EnvLedgerTable)
	if table == "" {
		return nil, fmt.Errorf("accessaudit: %s is not set", functions.EnvLedgerTable)
	}
	retention, err := retentionDays(os.Getenv(functions.EnvLedgerRetentionDays))
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.TracerProvider = tracing.SDK() })
	return &Service{
		SM:      secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.TracerProvider = tracing.SDK() }),
		Journal: ledger.New(db, table, ledger.Options{}),
		Store:   ledger.NewReads(db, table, retention),
		Events:  eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) { o.TracerProvider = tracing.SDK() }),
		Bus:     os.Getenv(functions.EnvEventBus),
		Group:   os.Getenv(functions.EnvRotationGroup),
		Trusted: ParseReaders(os.Getenv(functions.EnvTrustedPrincipals)),
		Log:     slog.New(slog.NewJSONHandler(os.Stdout, nil)).With("function", "accessaudit"),
	}, nil
}

// retentionDays reads LEDGER_RETENTION_DAYS as shared/config does: whole
// days, empty or 0 for no TTL.
func retentionDays(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	days, err := strconv.Atoi(v)
	if err != nil || days < 0 {
		return 0, fmt.Errorf("accessaudit: %s=%q: want a whole number of days", functions.EnvLedgerRetentionDays, v)
	}
	return time.Duration(days) * 24 * time.Hour, nil
}
