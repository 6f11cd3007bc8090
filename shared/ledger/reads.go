package ledger

// Reads of secrets, as the access audit records them from CloudTrail: one
// item per call (a read, or any denied call), keyed by the CloudTrail event so
// a redelivered event writes nothing twice, and one item per consumer (the
// principal, by role) naming the version it last read. Both live under the
// secret's partition next to its lease and journal, with their own sort-key
// prefixes ("ACCESS#", "CONSUMER#") so the journal's queries never see them.
// Like every ledger item they never hold a secret value: only ARNs, version
// ids, times and CloudTrail's error code.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Sort-key prefixes of the read items.
const (
	AccessPrefix   = "ACCESS#"
	ConsumerPrefix = "CONSUMER#"
)

// ReadsAPI is the part of *dynamodb.Client the read items use. Single-item
// writes, not transactions: a read item and a consumer item are independent,
// and a transaction would cost twice the write units.
type ReadsAPI interface {
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Access is one recorded call: a read of the secret, or a call that was
// denied.
type Access struct {
	PK     string `dynamodbav:"pk"`
	SK     string `dynamodbav:"sk"`
	Secret string `dynamodbav:"secret"`
	// EventID is CloudTrail's eventID, the item's identity.
	EventID   string `dynamodbav:"eventId"`
	EventName string `dynamodbav:"eventName"`
	At        int64  `dynamodbav:"at"` // eventTime, Unix milliseconds
	// Principal is the caller's ARN (an assumed-role session's ARN as is);
	// Consumer the identity consumers are tracked by (the session's role).
	Principal string `dynamodbav:"principal"`
	Consumer  string `dynamodbav:"consumer"`
	// VersionID is the version read: the one the call named, or the one
	// that held the named stage (AWSCURRENT by default) at that moment;
	// VersionSource says which ("named", "journal", "current"). Empty for
	// a denied call.
	VersionID     string `dynamodbav:"versionId,omitempty"`
	VersionStage  string `dynamodbav:"versionStage,omitempty"`
	VersionSource string `dynamodbav:"versionSource,omitempty"`
	ErrorCode     string `dynamodbav:"errorCode,omitempty"`
	// Verdict is "declared", "trusted", "undeclared" (not among the
	// secret's readers), "denied", or "unjudged" (no readers declared).
	Verdict string `dynamodbav:"verdict"`
	// AlertPending is set while an alert for this call is owed: the item is
	// written first, the alert published, then this is removed, so a
	// redelivered event publishes an alert that did not go out and never
	// records the call twice.
	AlertPending bool  `dynamodbav:"alertPending,omitempty"`
	ExpiresAt    int64 `dynamodbav:"expiresAt,omitempty"`
}

// Time returns At as a time.
func (a Access) Time() time.Time { return time.UnixMilli(a.At).UTC() }

// Consumer is the last read of one consumer of a secret.
type Consumer struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Secret    string `dynamodbav:"secret"`
	Consumer  string `dynamodbav:"consumer"`
	Principal string `dynamodbav:"principal"`
	LastRead  int64  `dynamodbav:"lastRead"` // Unix milliseconds
	VersionID string `dynamodbav:"versionId"`
	EventID   string `dynamodbav:"eventId"`
	ExpiresAt int64  `dynamodbav:"expiresAt,omitempty"`
}

// LastReadTime returns LastRead as a time.
func (c Consumer) LastReadTime() time.Time { return time.UnixMilli(c.LastRead).UTC() }

// Reads writes and reads the read items of one table.
type Reads struct {
	api       ReadsAPI
	table     string
	retention time.Duration
	now       func() time.Time
}

// NewReads returns the read items of table. retention, if set, gives every
// item a TTL (DynamoDB's, on the table's expiresAt attribute) counted from
// the read: a consumer that has not read for that long is forgotten.
func NewReads(api ReadsAPI, table string, retention time.Duration) *Reads {
	return &Reads{api: api, table: table, retention: retention, now: time.Now}
}

// AccessSK is the sort key of the access item of CloudTrail event eventID at
// at: time first, so a secret's accesses list in order.
func AccessSK(at time.Time, eventID string) string {
	return fmt.Sprintf("%s%013d#%s", AccessPrefix, at.UnixMilli(), eventID)
}

func (r *Reads) expires(at time.Time) int64 {
	if r.retention <= 0 {
		return 0
	}
	return at.Add(r.retention).Unix()
}

func readKey(pkv, skv string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pkv}, "sk": &types.AttributeValueMemberS{Value: skv},
	}
}

// Record writes a's item unless one for the same event exists (a conditional
// put). It returns the item as stored and whether this call wrote it.
func (r *Reads) Record(ctx context.Context, a Access) (Access, bool, error) {
	a.PK, a.SK = pk(a.Secret), AccessSK(a.Time(), a.EventID)
	a.ExpiresAt = r.expires(a.Time())
	item, err := attributevalue.MarshalMap(a)
	if err != nil {
		return Access{}, false, err
	}
	_, err = r.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: &r.table, Item: item,
		ConditionExpression: aws.String("attribute_not_exists(sk)")})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		out, err := r.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: &r.table, Key: readKey(a.PK, a.SK), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return Access{}, false, fmt.Errorf("read access item: %w", err)
		}
		stored, err := DecodeAccess(out.Item)
		return stored, false, err
	}
	if err != nil {
		return Access{}, false, fmt.Errorf("record access: %w", err)
	}
	return a, true, nil
}

// AlertSent clears a's AlertPending once its alert is out.
func (r *Reads) AlertSent(ctx context.Context, a Access) error {
	_, err := r.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: &r.table, Key: readKey(pk(a.Secret), AccessSK(a.Time(), a.EventID)),
		UpdateExpression: aws.String("REMOVE alertPending"), ConditionExpression: aws.String("attribute_exists(sk)")})
	if err != nil {
		return fmt.Errorf("clear alertPending: %w", err)
	}
	return nil
}

// Touch makes c the consumer's last read, unless a later read is already
// recorded (CloudTrail delivers out of order). CloudTrail's eventTime has
// one-second precision: of two reads in the same second the one recorded
// last wins. It reports whether it wrote.
func (r *Reads) Touch(ctx context.Context, c Consumer) (bool, error) {
	c.PK, c.SK = pk(c.Secret), ConsumerPrefix+c.Consumer
	c.ExpiresAt = r.expires(c.LastReadTime())
	item, err := attributevalue.MarshalMap(c)
	if err != nil {
		return false, err
	}
	_, err = r.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: &r.table, Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(sk) OR lastRead <= :at"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": &types.AttributeValueMemberN{Value: strconv.FormatInt(c.LastRead, 10)}}})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record consumer: %w", err)
	}
	return true, nil
}

func (r *Reads) query(ctx context.Context, secretARN, prefix string, each func(map[string]types.AttributeValue) error) error {
	p := dynamodb.NewQueryPaginator(r.api, &dynamodb.QueryInput{
		TableName: &r.table, ConsistentRead: aws.Bool(true),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: pk(secretARN)},
			":p":  &types.AttributeValueMemberS{Value: prefix},
		},
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("query %s items: %w", strings.TrimSuffix(prefix, "#"), err)
		}
		for _, it := range out.Items {
			if err := each(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// Consumers returns the consumers of a secret.
func (r *Reads) Consumers(ctx context.Context, secretARN string) ([]Consumer, error) {
	var list []Consumer
	err := r.query(ctx, secretARN, ConsumerPrefix, func(it map[string]types.AttributeValue) error {
		c, err := DecodeConsumer(it)
		list = append(list, c)
		return err
	})
	return list, err
}

// Accesses returns a secret's recorded accesses, oldest first.
func (r *Reads) Accesses(ctx context.Context, secretARN string) ([]Access, error) {
	var list []Access
	err := r.query(ctx, secretARN, AccessPrefix, func(it map[string]types.AttributeValue) error {
		a, err := DecodeAccess(it)
		list = append(list, a)
		return err
	})
	return list, err
}

// DecodeAccess parses an access item.
func DecodeAccess(item map[string]types.AttributeValue) (Access, error) {
	var a Access
	if err := attributevalue.UnmarshalMap(item, &a); err != nil {
		return Access{}, &DecodeError{Reason: "access item does not decode: " + err.Error()}
	}
	switch {
	case !strings.HasPrefix(a.PK, "SECRET#") || a.Secret == "" || "SECRET#"+a.Secret != a.PK:
		return Access{}, &DecodeError{Reason: "access item's secret does not match its key"}
	case a.EventID == "" || a.SK != AccessSK(a.Time(), a.EventID):
		return Access{}, &DecodeError{Reason: "access item's key does not match its event"}
	}
	return a, nil
}

// DecodeConsumer parses a consumer item.
func DecodeConsumer(item map[string]types.AttributeValue) (Consumer, error) {
	var c Consumer
	if err := attributevalue.UnmarshalMap(item, &c); err != nil {
		return Consumer{}, &DecodeError{Reason: "consumer item does not decode: " + err.Error()}
	}
	switch {
	case !strings.HasPrefix(c.PK, "SECRET#") || c.Secret == "" || "SECRET#"+c.Secret != c.PK:
		return Consumer{}, &DecodeError{Reason: "consumer item's secret does not match its key"}
	case c.Consumer == "" || c.SK != ConsumerPrefix+c.Consumer:
		return Consumer{}, &DecodeError{Reason: "consumer item's key does not match its consumer"}
	}
	return c, nil
}

// RecentJournal returns up to n of a secret's newest journal records, oldest
// first, read eventually consistently: what the access audit needs to say
// which version was AWSCURRENT when a read happened, without reading a
// year's journal for every read (History does). Journal keys grow with the
// fencing token, so the newest records are the last keys.
func (r *Reads) RecentJournal(ctx context.Context, secretARN string, n int32) ([]Record, error) {
	out, err := r.api.Query(ctx, &dynamodb.QueryInput{
		TableName: &r.table, ScanIndexForward: aws.Bool(false), Limit: aws.Int32(n),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :j)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: pk(secretARN)},
			":j":  &types.AttributeValueMemberS{Value: "J#"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("read recent journal: %w", err)
	}
	recs := make([]Record, 0, len(out.Items))
	for i := len(out.Items) - 1; i >= 0; i-- {
		rec, err := DecodeRecord(out.Items[i])
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}
