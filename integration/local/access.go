package local

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/integration/eventslocal"
	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/access"
	"github.com/secretsaga/secretsaga/shared/access/accessrule"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

// AccessAuditGroup is the rotation group the local access audit judges.
const AccessAuditGroup = "default"

// StartAccessAudit wires the access audit as the CDK app deploys it: the
// rules of shared/access/accessrule on the local default bus, whose target
// runs access.Service.Handle (the accessaudit function's handler) with the
// local clients. trusted are the ARN patterns of the product's own readers.
func (e *Env) StartAccessAudit(trusted string) (*access.Service, error) {
	// Its clients go through the fault injector as the function's, so
	// TestRecordedActions records the calls it makes (its IAM grants).
	cfg := e.AWS.Copy()
	cfg.APIOptions = append(cfg.APIOptions, e.Faults.APIOptionAs("accessaudit"))
	db := dynamodb.NewFromConfig(cfg, standin.LocalDynamoDBOptions(e.DynamoDB.Endpoint))
	svc := &access.Service{
		SM:      secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = &e.SMURL }),
		Journal: ledger.New(db, Table, ledger.Options{}),
		Store:   ledger.NewReads(db, Table, 0),
		Events:  eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) { o.BaseEndpoint = &e.EventsURL }),
		Group:   AccessAuditGroup,
		Trusted: access.ParseReaders(trusted),
		Log:     slog.New(slog.NewJSONHandler(e.Logs, nil)).With("function", "accessaudit"),
	}
	for i, p := range accessrule.Patterns {
		err := e.Events.PutRule(eventslocal.Rule{Name: accessRuleName(i), Pattern: p,
			State: eventslocal.RuleState(accessrule.State),
			Target: func(ctx context.Context, event json.RawMessage) error {
				return svc.Handle(ctx, event)
			}})
		if err != nil {
			return nil, err
		}
	}
	return svc, nil
}

func accessRuleName(i int) string { return fmt.Sprintf("secretsaga-accessaudit-%d", i) }

// StopAccessAudit removes the audit's rules (so other tests' calls do not
// reach it) and waits for the events already handed to it.
func (e *Env) StopAccessAudit() {
	for i := range accessrule.Patterns {
		e.Events.DeleteRule(accessRuleName(i))
	}
	e.Events.Wait()
}
