package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Self-healing after COMPENSATION_FAILED (DESIGN.md invariant 7).
//
// A lease that ends in COMPENSATION_FAILED enters the repair queue: its
// item gets the attribute repairQueue, the partition key of the sparse
// global secondary index RepairIndex, which therefore holds exactly the
// secrets that await repair, and nothing else (an item without the
// attribute is not in the index). The repair function lists the index,
// takes each due lease over with a new fencing token (TakeOverForRepair),
// and leaves the queue (ClearRepair) only once its outcome is journaled and
// announced, so an outcome event whose PutEvents failed is sent again by
// the next run. A new rotation's lease is a new item value without the
// attribute, so it leaves the queue too.

// RepairIndex is the ledger table's sparse index of the repair queue.
const RepairIndex = "repair"

// RepairQueueAttr is RepairIndex's partition key attribute.
const RepairQueueAttr = "repairQueue"

// repairQueue is the one value of repairQueue: the queue is small (secrets
// whose undo failed), so one partition is enough.
const repairQueue = "COMPENSATION_FAILED"

// RepairStarted is journaled when the repair function takes over a lease
// left in COMPENSATION_FAILED (or a repair that died), before it changes
// anything.
const RepairStarted State = "REPAIR_STARTED"

// Repair is a lease's place in the repair queue. The zero value means not
// queued.
type Repair struct {
	Queue string `dynamodbav:"repairQueue,omitempty"`
	// Since is when the secret first entered COMPENSATION_FAILED (Unix
	// milliseconds): the alert after REPAIR_ALERT_AFTER counts from it.
	Since int64 `dynamodbav:"repairSince,omitempty"`
	// Attempts counts repair attempts so far; the backoff doubles with each.
	Attempts int `dynamodbav:"repairAttempts,omitempty"`
	// LastAt is when the last attempt ran (or the failure happened, before
	// the first): the next is due a backoff later.
	LastAt int64 `dynamodbav:"repairLastAt,omitempty"`
	// Note is why the last attempt did not repair (never a value).
	Note string `dynamodbav:"repairNote,omitempty"`
}

// Queued reports whether the lease is in the repair queue.
func (r Repair) Queued() bool { return r.Queue != "" }

// Entered returns r after a journal write moves the lease from state from to
// to: COMPENSATION_FAILED puts it into the queue (the attempt clock restarts
// when it was not there already). Every other state keeps r as it is: the
// repair's own records keep the lease queued until ClearRepair.
func (r Repair) Entered(from, to State, now time.Time) Repair {
	if to != CompensationFailed {
		return r
	}
	r.Queue = repairQueue
	if r.Since == 0 {
		r.Since = now.UnixMilli()
	}
	if from != CompensationFailed {
		r.LastAt = now.UnixMilli()
	}
	return r
}

// SinceTime is Since as a time.
func (r Repair) SinceTime() time.Time { return time.UnixMilli(r.Since) }

// LastAtTime is LastAt as a time.
func (r Repair) LastAtTime() time.Time { return time.UnixMilli(r.LastAt) }

// RepairQueue lists the leases in the repair queue (the sparse index; an
// eventually consistent read: the caller reads each lease again with Get
// before acting on it).
func (l *Ledger) RepairQueue(ctx context.Context) ([]Lease, error) {
	var out []Lease
	p := dynamodb.NewQueryPaginator(l.api, &dynamodb.QueryInput{
		TableName: &l.table, IndexName: aws.String(RepairIndex),
		KeyConditionExpression:    aws.String(RepairQueueAttr + " = :q"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":q": &types.AttributeValueMemberS{Value: repairQueue}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the repair queue: %w", err)
		}
		for _, it := range page.Items {
			lease, err := DecodeLease(it)
			if err != nil {
				return nil, err
			}
			out = append(out, lease)
		}
	}
	return out, nil
}

// ErrNotRepairable means the lease is not (or no longer) one the repair
// may take: not queued, held by a live repair, or changed since it was read.
var ErrNotRepairable = errors.New("the lease is not awaiting repair (another repair or rotation acted first)")

// TakeOverForRepair takes cur, a queued lease in COMPENSATION_FAILED (or in
// a repair whose holder died: its lease expired), for execution with a new
// fencing token, and journals REPAIR_STARTED in the same transaction. The
// condition names cur's fencing token and journal sequence, so of two
// repairs exactly one wins, and a write of anyone else in between makes it
// fail with ErrNotRepairable. The new lease keeps the failed rotation's
// token and versions (what the repair decides about) and what it knew in
// TakenOver.
func (l *Ledger) TakeOverForRepair(ctx context.Context, cur Lease, execution, actor string) (Lease, error) {
	now := l.now()
	switch {
	case !cur.Queued():
		return Lease{}, ErrNotRepairable
	case cur.State == CompensationFailed && cur.Holder != "":
	case cur.State != CompensationFailed && cur.Holder != "" && !cur.Held(now):
	default:
		return Lease{}, ErrNotRepairable
	}
	next := cur
	next.Fencing, next.Seq = cur.Fencing+1, 1
	next.Holder, next.State = execution, RepairStarted
	next.Until = now.Add(l.leaseFor).UnixMilli()
	next.StartedAt, next.UpdatedAt = now.UnixMilli(), now.UnixMilli()
	next.TakenOver = &TakenOver{Execution: cur.Holder, Fencing: cur.Fencing, Token: cur.Token, State: cur.State,
		PreviousVersion: cur.PreviousVersion, PreviousPrevious: cur.PreviousPrevious,
		SetMayHaveRun: cur.SetMayHaveRun, FinishMayHaveRun: cur.FinishMayHaveRun}
	next.Repair.Attempts++
	next.Repair.LastAt = now.UnixMilli()
	item, err := attributevalue.MarshalMap(next)
	if err != nil {
		return Lease{}, err
	}
	rec, err := l.record(next, Record{State: RepairStarted, Actor: actor, PreviousVersion: cur.PreviousVersion,
		Detail: fmt.Sprintf("repair attempt %d of rotation #%d (execution %s, version %s), left in %s", next.Repair.Attempts, cur.Fencing, cur.Holder, cur.Token, cur.State)})
	if err != nil {
		return Lease{}, err
	}
	// The login locks follow the lease to its new fencing token and
	// holder, in the same write: the repair may change the login, and its
	// journal writes check them. One that another secret's rotation took
	// over meanwhile (after a repair died) makes the repair wait.
	locks, err := l.lockLogins(ctx, next, nil, now)
	if err != nil {
		if errors.As(err, new(*LoginHeldError)) {
			return Lease{}, fmt.Errorf("%w: %w", ErrNotRepairable, err)
		}
		return Lease{}, err
	}
	_, err = l.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: append([]types.TransactWriteItem{
		{Put: &types.Put{TableName: &l.table, Item: item, ConditionExpression: aws.String("fencing = :old AND seq = :seq"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":old": num(cur.Fencing), ":seq": num(cur.Seq)}}},
		{Put: rec},
	}, locks...)})
	if lostRace(err) {
		return Lease{}, ErrNotRepairable
	}
	if err != nil {
		return Lease{}, fmt.Errorf("take the lease over for repair: %w", err)
	}
	return next, nil
}

// DeferRepair records an attempt that changed nothing (the target still
// cannot be reached, say): one more attempt, at now, and why. It writes only
// the lease item, conditioned on the fencing token and journal sequence
// read (every journal write moves one of them), so it never overwrites anyone's later write (ErrNotRepairable).
func (l *Ledger) DeferRepair(ctx context.Context, cur Lease, note string) (Lease, error) {
	next := cur
	next.Repair.Attempts++
	next.Repair.LastAt = l.now().UnixMilli()
	next.Repair.Note = note
	return next, l.putLease(ctx, cur, next)
}

// ClearRepair takes a lease whose repair has ended (journaled and
// announced) out of the queue.
func (l *Ledger) ClearRepair(ctx context.Context, cur Lease) error {
	next := cur
	next.Repair = Repair{}
	return l.putLease(ctx, cur, next)
}

func (l *Ledger) putLease(ctx context.Context, cur, next Lease) error {
	item, err := attributevalue.MarshalMap(next)
	if err != nil {
		return err
	}
	_, err = l.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: &l.table, Item: item, ConditionExpression: aws.String("fencing = :f AND seq = :s"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":f": num(cur.Fencing), ":s": num(cur.Seq)}}},
	}})
	if conditionFailed(err, 0) {
		return ErrNotRepairable
	}
	if err != nil {
		return fmt.Errorf("update the repair queue: %w", err)
	}
	return nil
}
