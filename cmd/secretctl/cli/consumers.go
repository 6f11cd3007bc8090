package cli

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/shared/access"
	"github.com/secretsaga/secretsaga/shared/ledger"
)

var consumersCmd = &command{
	name: "consumers", args: "<secret>",
	short: "who reads the secret, the version each holds, and whether the next rotation breaks it",
	long: `Lists the consumers the access audit recorded for a secret (the roles that
read it, from CloudTrail): when each last read it, the version it holds and
how many rotations behind that is, and what the next rotation does to it
("breaks": alternating users, it holds AWSPREVIOUS; "already invalid": its
password was changed; "fine": it holds AWSCURRENT). A consumer is stale when
it has not read since the last rotation (README: the access audit).`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		return func(e *env, pos []string) int {
			id, err := exactlyOne(pos, "secret")
			if err == nil {
				err = e.consumers(id)
			}
			if err != nil {
				return e.fail("consumers", err)
			}
			return ExitOK
		}
	},
}

type consumerReport struct {
	Consumer             string `json:"consumer"`
	Principal            string `json:"principal"`
	LastRead             string `json:"lastRead"`
	Version              string `json:"version"`
	VersionsBehind       int    `json:"versionsBehind"`
	Stale                bool   `json:"stale"`
	BreaksAtNextRotation bool   `json:"breaksAtNextRotation"`
	AlreadyInvalid       bool   `json:"alreadyInvalid"`
}

// consumerStates reads a secret's consumers from the ledger and judges them
// against its stages and strategy (access.Assess).
func (e *env) consumerStates(arn string) ([]access.ConsumerState, string, error) {
	if err := e.needSM(); err != nil {
		return nil, "", err
	}
	if err := e.needDB(); err != nil {
		return nil, "", err
	}
	out, err := e.deps.SM.DescribeSecret(e.ctx, &sm.DescribeSecretInput{SecretId: &arn})
	if err != nil {
		return nil, "", fmt.Errorf("describe secret %s: %w", arn, err)
	}
	arn = aws.ToString(out.ARN)
	strategyTag := ""
	for _, t := range out.Tags {
		if aws.ToString(t.Key) == access.StrategyTag {
			strategyTag = aws.ToString(t.Value)
		}
	}
	key := map[string]ddbtypes.AttributeValue{
		"pk": &ddbtypes.AttributeValueMemberS{Value: "SECRET#" + arn}, "sk": &ddbtypes.AttributeValueMemberS{Value: "LEASE"},
	}
	lease := ledger.Lease{}
	got, err := e.deps.DB.GetItem(e.ctx, &dynamodb.GetItemInput{TableName: aws.String(e.g.ledgerTable), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, "", fmt.Errorf("read the lease of %s: %w", arn, err)
	}
	if len(got.Item) > 0 {
		if lease, err = ledger.DecodeLease(got.Item); err != nil {
			return nil, "", err
		}
	}
	var consumers []ledger.Consumer
	p := dynamodb.NewQueryPaginator(e.deps.DB, &dynamodb.QueryInput{
		TableName: aws.String(e.g.ledgerTable), ConsistentRead: aws.Bool(true),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :c)"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":pk": &ddbtypes.AttributeValueMemberS{Value: "SECRET#" + arn},
			":c":  &ddbtypes.AttributeValueMemberS{Value: ledger.ConsumerPrefix},
		},
	})
	for p.HasMorePages() {
		pg, err := p.NextPage(e.ctx)
		if err != nil {
			return nil, "", fmt.Errorf("read the consumers of %s: %w", arn, err)
		}
		for _, it := range pg.Items {
			c, err := ledger.DecodeConsumer(it)
			if err != nil {
				return nil, "", err
			}
			consumers = append(consumers, c)
		}
	}
	states := access.Assess(consumers, out.VersionIdsToStages, access.Alternating(lease, strategyTag))
	slices.SortFunc(states, func(a, b access.ConsumerState) int { return strings.Compare(a.Consumer.Consumer, b.Consumer.Consumer) })
	return states, arn, nil
}

func (e *env) consumers(id string) error {
	states, arn, err := e.consumerStates(id)
	if err != nil {
		return err
	}
	reports := []consumerReport{}
	for _, s := range states {
		reports = append(reports, consumerReport{Consumer: s.Consumer.Consumer, Principal: s.Principal, LastRead: fmtTime(s.LastReadTime()),
			Version: s.VersionID, VersionsBehind: s.VersionsBehind, Stale: s.Stale, BreaksAtNextRotation: s.BreaksAtNextRotation, AlreadyInvalid: s.AlreadyInvalid})
	}
	if e.json() {
		return writeJSON(e.stdout, map[string]any{"secret": arn, "consumers": reports})
	}
	if len(reports) == 0 {
		fmt.Fprintf(e.stdout, "no consumers recorded for %s\n", secretName(arn))
		return nil
	}
	t := newTable(e.stdout, "CONSUMER", "LAST READ", "VERSION", "BEHIND", "NEXT ROTATION")
	for _, r := range reports {
		next := "fine"
		switch {
		case r.AlreadyInvalid:
			next = "already invalid"
		case r.BreaksAtNextRotation:
			next = "breaks"
		}
		t.row(r.Consumer, r.LastRead, r.Version, fmt.Sprint(r.VersionsBehind), next)
	}
	t.flush()
	return nil
}

// staleConsumers is why rotate --require-fresh-consumers refuses, or nil.
func (e *env) staleConsumers(arn string) error {
	states, _, err := e.consumerStates(arn)
	if err != nil {
		return err
	}
	var stale []string
	for _, s := range states {
		if s.Stale {
			what := "breaks at this rotation"
			if s.AlreadyInvalid {
				what = "already holds a changed password"
			}
			stale = append(stale, fmt.Sprintf("%s (last read %s, version %s: %s)", s.Consumer.Consumer, fmtTime(s.LastReadTime()), s.VersionID, what))
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("refused, nothing started: %d consumer(s) have not read the secret since the last rotation: %s; make them read it again, or rotate without --require-fresh-consumers",
			len(stale), strings.Join(stale, "; "))
	}
	return nil
}
