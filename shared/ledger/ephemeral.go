package ledger

// Short-lived logins (issue 17). Each issued login has one lease item,
// keyed by its lease id (the login's name), and a journal of its state
// transitions next to it:
//
//	ISSUING   written before the database is touched (write-ahead)
//	ISSUED    the login works and its secret is stored
//	RENEWED   (journal only) its expiry moved
//	REVOKING  written before the login is dropped; again on every attempt
//	REVOKE_FAILED (journal only) an attempt failed; the lease stays due
//	REVOKED   the login and its secret are gone
//
// Every write is a compare-and-swap on the item's sequence number, in one
// transaction with its journal record, so two revokers (the lease's own
// execution and the sweeper) or a renewal racing a revocation cannot
// overwrite each other: the loser reads again and decides again.
//
// Until REVOKED the item carries ephemeralQueue, the partition key of the
// sparse index EphemeralIndex, with revokeAt (when it is due for
// revocation) as its sort key: the sweeper's query "due before now" finds
// every login whose revocation is owed, whatever happened to the execution
// that issued it. An ISSUING lease is due a grace period after it started,
// so an issue that died half way is cleaned up too. The REVOKED item leaves
// the index and gets the table's TTL attribute; an open one never has it
// (a lease must not vanish while its login may exist).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// EphemeralState is a journaled state of a short-lived login.
type EphemeralState string

// The states; RENEWED and REVOKE_FAILED are journal records only (the
// lease stays ISSUED, or REVOKING).
const (
	Issuing      EphemeralState = "ISSUING"
	Issued       EphemeralState = "ISSUED"
	Renewed      EphemeralState = "RENEWED"
	Revoking     EphemeralState = "REVOKING"
	RevokeFailed EphemeralState = "REVOKE_FAILED"
	Revoked      EphemeralState = "REVOKED"
)

// EphemeralIndex is the ledger table's sparse index of open leases.
const EphemeralIndex = "ephemeral"

// Its key attributes.
const (
	EphemeralQueueAttr = "ephemeralQueue"
	EphemeralDueAttr   = "revokeAt"
)

// ephemeralOpen is the one value of ephemeralQueue.
const ephemeralOpen = "OPEN"

// RevokedRetention is how long a REVOKED lease item stays (the table's TTL)
// when the ledger has no retention of its own.
const RevokedRetention = 90 * 24 * time.Hour

// EphemeralLease is the lease item of one short-lived login. It holds
// everything revocation needs (where, as whom, the master's secret), so a
// login can be revoked even once its template secret is gone; never a
// password.
type EphemeralLease struct {
	PK string `dynamodbav:"pk"`
	SK string `dynamodbav:"sk"`
	// ID is the lease id, which is the login's name.
	ID       string `dynamodbav:"leaseId"`
	Template string `dynamodbav:"template"` // the template secret's ARN
	Master   string `dynamodbav:"master"`   // the master secret's ARN
	Engine   string `dynamodbav:"engine"`
	Host     string `dynamodbav:"host"`
	Port     int    `dynamodbav:"port"`
	DBName   string `dynamodbav:"dbname,omitempty"`
	TLS      string `dynamodbav:"tls,omitempty"`
	Role     string `dynamodbav:"role"`
	// Owner is who asked for the login (the caller's principal, or what
	// the execution input says).
	Owner     string `dynamodbav:"owner"`
	Execution string `dynamodbav:"executionArn"`
	// Secret is the secret that holds the login, once stored.
	Secret string         `dynamodbav:"credentialSecret,omitempty"`
	State  EphemeralState `dynamodbav:"state"`
	Seq    int64          `dynamodbav:"seq"`
	// IssuedAt, NotAfter and MaxNotAfter are Unix milliseconds: when the
	// issue started, when the login expires, and how far renewals may
	// move NotAfter.
	IssuedAt    int64 `dynamodbav:"issuedAt"`
	NotAfter    int64 `dynamodbav:"notAfter"`
	MaxNotAfter int64 `dynamodbav:"maxNotAfter"`
	// RevokeAttempts counts failed revocation attempts; LastError is the
	// last one's error class and step (never a value).
	RevokeAttempts int    `dynamodbav:"revokeAttempts,omitempty"`
	LastError      string `dynamodbav:"lastError,omitempty"`
	// Alerted is set once Revocation Failed was published for the lease.
	Alerted   bool  `dynamodbav:"alerted,omitempty"`
	UpdatedAt int64 `dynamodbav:"updatedAt"`
	// Queue and RevokeAt place an open lease in EphemeralIndex.
	Queue    string `dynamodbav:"ephemeralQueue,omitempty"`
	RevokeAt int64  `dynamodbav:"revokeAt,omitempty"`
	// ExpiresAt is the table's TTL attribute (Unix seconds), set once
	// REVOKED.
	ExpiresAt int64 `dynamodbav:"expiresAt,omitempty"`
}

// Open reports whether the login may still exist.
func (l EphemeralLease) Open() bool { return l.State != Revoked }

// NotAfterTime is NotAfter as a time.
func (l EphemeralLease) NotAfterTime() time.Time { return time.UnixMilli(l.NotAfter).UTC() }

// MaxNotAfterTime is MaxNotAfter as a time.
func (l EphemeralLease) MaxNotAfterTime() time.Time { return time.UnixMilli(l.MaxNotAfter).UTC() }

// IssuedAtTime is IssuedAt as a time.
func (l EphemeralLease) IssuedAtTime() time.Time { return time.UnixMilli(l.IssuedAt).UTC() }

// RevokeAtTime is when the sweeper owes the lease a revocation.
func (l EphemeralLease) RevokeAtTime() time.Time { return time.UnixMilli(l.RevokeAt).UTC() }

// EphemeralRecord is one journal item of a short-lived login.
type EphemeralRecord struct {
	PK        string         `dynamodbav:"pk"`
	SK        string         `dynamodbav:"sk"`
	Lease     string         `dynamodbav:"leaseId"`
	Seq       int64          `dynamodbav:"seq"`
	State     EphemeralState `dynamodbav:"state"`
	At        int64          `dynamodbav:"at"` // Unix milliseconds
	Actor     string         `dynamodbav:"actor"`
	Execution string         `dynamodbav:"executionArn,omitempty"`
	NotAfter  int64          `dynamodbav:"notAfter,omitempty"`
	// ErrorClass is the errorType of a failure; Detail a short
	// machine-written note (never a value).
	ErrorClass string `dynamodbav:"errorClass,omitempty"`
	Detail     string `dynamodbav:"detail,omitempty"`
	ExpiresAt  int64  `dynamodbav:"expiresAt,omitempty"`
}

// Time returns At as a time.
func (r EphemeralRecord) Time() time.Time { return time.UnixMilli(r.At).UTC() }

func ephemeralPK(id string) string { return "EPHEMERAL#" + id }

func ephemeralJournalSK(seq int64) string { return fmt.Sprintf("J#%06d", seq) }

// ErrLeaseChanged means the lease item moved since it was read (another
// revoker, a renewal, a retried write of ours whose answer was lost):
// read it again and decide again.
var ErrLeaseChanged = errors.New("the lease changed since it was read")

// ErrLeaseExists means a lease with this id exists and belongs to another
// execution.
var ErrLeaseExists = errors.New("a lease with this id exists and belongs to another execution")

// GetEphemeral reads a lease item with a strongly consistent read.
func (l *Ledger) GetEphemeral(ctx context.Context, id string) (EphemeralLease, bool, error) {
	out, err := l.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &l.table, ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: ephemeralPK(id)},
			"sk": &types.AttributeValueMemberS{Value: leaseSK},
		},
	})
	if err != nil {
		return EphemeralLease{}, false, fmt.Errorf("read lease %s: %w", id, err)
	}
	if out.Item == nil {
		return EphemeralLease{}, false, nil
	}
	var lease EphemeralLease
	if err := attributevalue.UnmarshalMap(out.Item, &lease); err != nil {
		return EphemeralLease{}, false, &DecodeError{Reason: "lease " + id + " does not decode: " + err.Error()}
	}
	return lease, true, nil
}

// BeginIssue writes lease as ISSUING (sequence 1, in the index, due at
// dueAt) with its first journal record, only if no lease with its id
// exists. A lease of the same id and execution that is still ISSUING or
// ISSUED (a retried issue) is returned as it is; any other is
// ErrLeaseExists.
func (l *Ledger) BeginIssue(ctx context.Context, lease EphemeralLease, actor string, dueAt time.Time) (EphemeralLease, error) {
	now := l.now()
	lease.PK, lease.SK = ephemeralPK(lease.ID), leaseSK
	lease.State, lease.Seq = Issuing, 1
	lease.IssuedAt, lease.UpdatedAt = now.UnixMilli(), now.UnixMilli()
	lease.Queue, lease.RevokeAt = ephemeralOpen, dueAt.UnixMilli()
	lease.ExpiresAt = 0
	item, err := attributevalue.MarshalMap(lease)
	if err != nil {
		return EphemeralLease{}, err
	}
	rec, err := l.ephemeralRecord(lease, EphemeralRecord{State: Issuing, Actor: actor, NotAfter: lease.NotAfter})
	if err != nil {
		return EphemeralLease{}, err
	}
	_, err = l.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: &l.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		{Put: rec},
	}})
	if err == nil {
		return lease, nil
	}
	if !lostRace(err) {
		return EphemeralLease{}, fmt.Errorf("journal %s of lease %s: %w", Issuing, lease.ID, err)
	}
	cur, ok, gerr := l.GetEphemeral(ctx, lease.ID)
	if gerr != nil {
		return EphemeralLease{}, gerr
	}
	if ok && cur.Execution == lease.Execution && (cur.State == Issuing || cur.State == Issued) {
		return cur, nil
	}
	return EphemeralLease{}, fmt.Errorf("lease %s: %w", lease.ID, ErrLeaseExists)
}

// EphemeralChange is one transition of a lease: the record to journal and
// what it does to the item.
type EphemeralChange struct {
	Record EphemeralRecord
	// Apply changes the item (state, expiry, secret...); the ledger then
	// sets the sequence, the time, and the index and TTL attributes from
	// the resulting state.
	Apply func(*EphemeralLease)
	// DueAt, if not zero, is when the lease is next due for revocation
	// (default: NotAfter for ISSUED, now for REVOKING).
	DueAt time.Time
}

// Transition applies ch to *lease with a compare-and-swap on its sequence
// and journals ch.Record in the same transaction; on success *lease is the
// new item. A lease that moved since it was read is ErrLeaseChanged and
// nothing is written.
func (l *Ledger) Transition(ctx context.Context, lease *EphemeralLease, ch EphemeralChange) error {
	now := l.now()
	next := *lease
	if ch.Apply != nil {
		ch.Apply(&next)
	}
	if ch.Record.State != Renewed && ch.Record.State != RevokeFailed {
		next.State = ch.Record.State
	}
	next.Seq = lease.Seq + 1
	next.UpdatedAt = now.UnixMilli()
	switch {
	case next.State == Revoked:
		next.Queue, next.RevokeAt = "", 0
		keep := l.retention
		if keep <= 0 {
			keep = RevokedRetention
		}
		next.ExpiresAt = now.Add(keep).Unix()
	case !ch.DueAt.IsZero():
		next.Queue, next.RevokeAt = ephemeralOpen, ch.DueAt.UnixMilli()
	case next.State == Issued:
		next.Queue, next.RevokeAt = ephemeralOpen, next.NotAfter
	default:
		next.Queue = ephemeralOpen
		if next.RevokeAt == 0 {
			next.RevokeAt = now.UnixMilli()
		}
	}
	item, err := attributevalue.MarshalMap(next)
	if err != nil {
		return err
	}
	rec := ch.Record
	if rec.NotAfter == 0 {
		rec.NotAfter = next.NotAfter
	}
	put, err := l.ephemeralRecord(next, rec)
	if err != nil {
		return err
	}
	_, err = l.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{
			TableName: &l.table, Item: item,
			ConditionExpression:       aws.String("seq = :s"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":s": num(lease.Seq)},
		}},
		{Put: put},
	}})
	if lostRace(err) {
		return fmt.Errorf("journal %s of lease %s: %w", ch.Record.State, lease.ID, ErrLeaseChanged)
	}
	if err != nil {
		return fmt.Errorf("journal %s of lease %s: %w", ch.Record.State, lease.ID, err)
	}
	*lease = next
	return nil
}

func (l *Ledger) ephemeralRecord(lease EphemeralLease, r EphemeralRecord) (*types.Put, error) {
	r.PK = lease.PK
	r.SK = ephemeralJournalSK(lease.Seq)
	r.Lease = lease.ID
	r.Seq = lease.Seq
	if r.Execution == "" {
		r.Execution = lease.Execution
	}
	return l.journalPut(&r.At, &r.ExpiresAt, &r)
}

// DueEphemeral lists the open leases due for revocation at now (from the
// sparse index: eventually consistent; read each with GetEphemeral before
// acting on it), earliest first, at most limit (0: all).
func (l *Ledger) DueEphemeral(ctx context.Context, now time.Time, limit int) ([]EphemeralLease, error) {
	return l.queryEphemeral(ctx, aws.String(EphemeralQueueAttr+" = :q AND "+EphemeralDueAttr+" <= :now"),
		map[string]types.AttributeValue{
			":q":   &types.AttributeValueMemberS{Value: ephemeralOpen},
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)},
		}, limit)
}

// OpenEphemeral lists every open lease (issuing, issued or being revoked),
// earliest due first.
func (l *Ledger) OpenEphemeral(ctx context.Context) ([]EphemeralLease, error) {
	return l.queryEphemeral(ctx, aws.String(EphemeralQueueAttr+" = :q"),
		map[string]types.AttributeValue{":q": &types.AttributeValueMemberS{Value: ephemeralOpen}}, 0)
}

func (l *Ledger) queryEphemeral(ctx context.Context, cond *string, values map[string]types.AttributeValue, limit int) ([]EphemeralLease, error) {
	var out []EphemeralLease
	p := dynamodb.NewQueryPaginator(l.api, &dynamodb.QueryInput{
		TableName: &l.table, IndexName: aws.String(EphemeralIndex),
		KeyConditionExpression: cond, ExpressionAttributeValues: values,
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the open leases: %w", err)
		}
		for _, it := range page.Items {
			var lease EphemeralLease
			if err := attributevalue.UnmarshalMap(it, &lease); err != nil {
				return nil, &DecodeError{Reason: "an open lease does not decode: " + err.Error()}
			}
			out = append(out, lease)
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
	}
	return out, nil
}

// EphemeralHistory returns a lease's journal, oldest first.
func (l *Ledger) EphemeralHistory(ctx context.Context, id string) ([]EphemeralRecord, error) {
	var recs []EphemeralRecord
	p := dynamodb.NewQueryPaginator(l.api, &dynamodb.QueryInput{
		TableName: &l.table, ConsistentRead: aws.Bool(true),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :j)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: ephemeralPK(id)},
			":j":  &types.AttributeValueMemberS{Value: "J#"},
		},
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the journal of lease %s: %w", id, err)
		}
		for _, it := range out.Items {
			var r EphemeralRecord
			if err := attributevalue.UnmarshalMap(it, &r); err != nil {
				return nil, &DecodeError{Reason: "a journal record of lease " + id + " does not decode: " + err.Error()}
			}
			recs = append(recs, r)
		}
	}
	return recs, nil
}
