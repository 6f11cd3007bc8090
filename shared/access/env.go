package access

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/shared/functions"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// FromEnv wires the audit as the accessaudit function runs it, from the
// variables shared/functions lists for it. It does not go through
// shared/config, which links the rotation and every database driver, nor
// the SDK's config loader (1.4 MB of SSO, STS and IMDS clients the bootstrap
// would carry): in Lambda the region and the execution role's credentials
// are environment variables (AWS_REGION, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), which is where the loader would
// find them too.
func FromEnv(_ context.Context) (*Service, error) {
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	key, secretKey := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if region == "" || key == "" || secretKey == "" {
		return nil, fmt.Errorf("accessaudit: AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (Lambda sets them)")
	}
	cfg := aws.Config{Region: region,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(key, secretKey, os.Getenv("AWS_SESSION_TOKEN")))}
	table := os.Getenv(functions.EnvLedgerTable)
	if table == "" {
		return nil, fmt.Errorf("accessaudit: %s is not set", functions.EnvLedgerTable)
	}
	retention, err := retentionDays(os.Getenv(functions.EnvLedgerRetentionDays))
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(cfg)
	return &Service{
		SM:      secretsmanager.NewFromConfig(cfg),
		Journal: ledger.New(db, table, ledger.Options{}),
		Store:   ledger.NewReads(db, table, retention),
		Events:  eventbridge.NewFromConfig(cfg),
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
