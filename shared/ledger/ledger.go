// Package ledger is the rotation's write-ahead journal and lock, in DynamoDB.
//
// Per secret there is one lease item holding a fencing counter. A rotation
// takes the lease with a compare-and-swap on that counter and gets a new,
// larger fencing token; every later write of the rotation is a transaction
// whose condition names that token and the holder, so an execution that lost
// its lease (a zombie after a Lambda timeout, say) cannot write anything.
// Each state transition is journaled as its own item, in order, before the
// effect it announces (like Vault's WAL): the journal is the crash-recovery
// record and the audit trail. No secret value ever enters an item.
package ledger

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

// State is a journaled state of a rotation.
type State string

// The journal's states. STARTED is written with the lease; the *_STARTED
// records are write-ahead intents; the last four are terminal.
const (
	Started           State = "STARTED"
	Created           State = "CREATED"
	SetStarted        State = "SET_STARTED"
	SetDone           State = "SET_DONE"
	Tested            State = "TESTED"
	FinishStarted     State = "FINISH_STARTED"
	FinishDone        State = "FINISH_DONE"
	Verified          State = "VERIFIED"
	CompensateStarted State = "COMPENSATE_STARTED"
	// Recovered: this rotation cleaned up after an earlier one whose
	// execution died without ending (its lease expired in a non-final
	// state): undone, or kept if it had already moved AWSCURRENT.
	Recovered          State = "RECOVERED"
	Finished           State = "FINISHED"
	RolledBack         State = "ROLLED_BACK"
	Abandoned          State = "ABANDONED"
	CompensationFailed State = "COMPENSATION_FAILED"
)

// Terminal reports whether no more records follow s in a rotation.
func (s State) Terminal() bool {
	switch s {
	case Finished, RolledBack, Abandoned, CompensationFailed:
		return true
	}
	return false
}

// API is the part of *dynamodb.Client the ledger uses.
type API interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Lease is the lock item of one secret. Its fields also carry what
// compensation needs to know, so that a crashed execution's successor can read
// it: the versions at start and whether set or finish may have run.
type Lease struct {
	PK      string `dynamodbav:"pk"`
	SK      string `dynamodbav:"sk"`
	Secret  string `dynamodbav:"secret"`
	Fencing int64  `dynamodbav:"fencing"`
	Seq     int64  `dynamodbav:"seq"`
	// Holder is the execution that holds the lease; empty when released.
	Holder string `dynamodbav:"holder,omitempty"`
	// Until is when the lease expires; the zero time means it never does
	// (COMPENSATION_FAILED keeps it until an operator acts).
	Until            int64  `dynamodbav:"leaseUntil"`
	State            State  `dynamodbav:"state"`
	Token            string `dynamodbav:"token"`
	PreviousVersion  string `dynamodbav:"previousVersion"`
	PreviousPrevious string `dynamodbav:"previousPreviousVersion,omitempty"`
	SetMayHaveRun    bool   `dynamodbav:"setMayHaveRun"`
	FinishMayHaveRun bool   `dynamodbav:"finishMayHaveRun"`
	StartedAt        int64  `dynamodbav:"startedAt"`
	UpdatedAt        int64  `dynamodbav:"updatedAt"`
	// TakenOver is set when this lease was taken over from a rotation whose
	// lease expired before it ended: what it knew, for its successor to
	// clean up. It is written in the same transaction as the takeover, so a
	// retried acquire finds it too.
	TakenOver *TakenOver `dynamodbav:"takenOver,omitempty"`
	// Repair is set while the secret awaits (or undergoes) self-healing
	// after COMPENSATION_FAILED; it puts the item into the sparse repair
	// index (see repair.go).
	Repair
	// Logins are the lock keys (Login.Key, space-separated) of the
	// database logins this rotation locked with the lease: it holds them
	// as long as it holds the lease, and frees them when it frees it.
	Logins string `dynamodbav:"logins,omitempty"`
}

// TakenOver is the lease of a rotation that died unfinished, as it was
// when its successor took the lease over.
type TakenOver struct {
	Execution        string `dynamodbav:"execution"`
	Fencing          int64  `dynamodbav:"fencing"`
	Token            string `dynamodbav:"token"`
	State            State  `dynamodbav:"state"`
	PreviousVersion  string `dynamodbav:"previousVersion"`
	PreviousPrevious string `dynamodbav:"previousPreviousVersion,omitempty"`
	SetMayHaveRun    bool   `dynamodbav:"setMayHaveRun"`
	FinishMayHaveRun bool   `dynamodbav:"finishMayHaveRun"`
}

// Unfinished reports whether a rotation holds (or held, until it expired)
// this lease without having ended.
func (l Lease) Unfinished() bool { return l.Holder != "" && !l.State.Terminal() }

// Held reports whether the lease is held by someone at now.
func (l Lease) Held(now time.Time) bool {
	if l.Holder == "" {
		return false
	}
	return l.State == CompensationFailed || l.Until == 0 || now.UnixMilli() < l.Until
}

// UpdatedAtTime returns UpdatedAt as a time.
func (l Lease) UpdatedAtTime() time.Time { return time.UnixMilli(l.UpdatedAt) }

// Record is one journal item: one state transition of one rotation.
type Record struct {
	PK              string `dynamodbav:"pk"`
	SK              string `dynamodbav:"sk"`
	Secret          string `dynamodbav:"secret"`
	Fencing         int64  `dynamodbav:"fencing"`
	Seq             int64  `dynamodbav:"seq"`
	State           State  `dynamodbav:"state"`
	At              int64  `dynamodbav:"at"` // Unix milliseconds
	Actor           string `dynamodbav:"actor"`
	Execution       string `dynamodbav:"executionArn"`
	Token           string `dynamodbav:"token"`
	PreviousVersion string `dynamodbav:"previousVersion,omitempty"`
	ErrorClass      string `dynamodbav:"errorClass,omitempty"`
	// Detail is a short machine-written note (never a value).
	Detail    string `dynamodbav:"detail,omitempty"`
	ExpiresAt int64  `dynamodbav:"expiresAt,omitempty"` // DynamoDB TTL, when retention is set
}

// Time returns At as a time.
func (r Record) Time() time.Time { return time.UnixMilli(r.At).UTC() }

// Ledger reads and writes one table.
type Ledger struct {
	api       API
	table     string
	leaseFor  time.Duration
	retention time.Duration
	now       func() time.Time
}

// Options tune a Ledger.
type Options struct {
	// LeaseDuration bounds how long a silent holder keeps the lease; every
	// journal write extends it. It must exceed the longest step plus retries.
	LeaseDuration time.Duration
	// Retention, if set, gives journal items a TTL (the lease item never has one:
	// losing the fencing counter would let an old token be issued again).
	Retention time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// New returns a Ledger over table.
func New(api API, table string, o Options) *Ledger {
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 15 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Ledger{api: api, table: table, leaseFor: o.LeaseDuration, retention: o.Retention, now: o.Now}
}

// Table returns the table name.
func (l *Ledger) Table() string { return l.table }

func pk(secretARN string) string { return "SECRET#" + secretARN }

const leaseSK = "LEASE"

// journalSK orders records by rotation (fencing grows per secret) and then by
// sequence within the rotation.
func journalSK(fencing, seq int64) string { return fmt.Sprintf("J#%012d#%04d", fencing, seq) }

// HeldError says the lease is someone else's.
type HeldError struct {
	Holder string
	State  State
	Until  time.Time // zero: held until an operator acts
}

func (e *HeldError) Error() string {
	if e.State == CompensationFailed {
		return fmt.Sprintf("lease held by %s after COMPENSATION_FAILED; the repair function retries it with backoff until the target answers, and alerts if an operator must act", e.Holder)
	}
	return fmt.Sprintf("lease held by %s (state %s) until %s", e.Holder, e.State, e.Until.Format(time.RFC3339))
}

// ErrFenced means the caller's fencing token or holder is no longer the
// lease's: a newer execution owns the secret.
var ErrFenced = errors.New("fencing token superseded: another execution owns the lease")

// AcquireRequest takes the lease for one rotation.
type AcquireRequest struct {
	Secret           string // secret ARN
	Execution        string // the holder: the execution ARN
	Token            string // the rotation's ClientRequestToken
	Actor            string
	PreviousVersion  string // AWSCURRENT at start
	PreviousPrevious string // AWSPREVIOUS at start, if any
	// Logins are the database logins the rotation will change (for the
	// alternating strategy, both users): locked in the same transaction
	// as the lease, refused with *LoginHeldError while another secret's
	// rotation holds any of them.
	Logins []Login
	// Known, if not nil, is the lease item as the caller just read it (Get;
	// the zero Lease when there was none), so that the first attempt need
	// not read it again. A stale one costs only a second attempt: the
	// write is a compare-and-swap on what was read.
	Known *Lease
}

// Get reads the lease item with a strongly consistent read; ok is false when
// the secret has never been rotated.
func (l *Ledger) Get(ctx context.Context, secretARN string) (Lease, bool, error) {
	out, err := l.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &l.table, ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: pk(secretARN)},
			"sk": &types.AttributeValueMemberS{Value: leaseSK},
		},
	})
	if err != nil {
		return Lease{}, false, fmt.Errorf("read lease: %w", err)
	}
	if out.Item == nil {
		return Lease{}, false, nil
	}
	lease, err := DecodeLease(out.Item)
	return lease, err == nil, err
}

// Acquire takes the lease if it is free or expired and journals STARTED in
// the same transaction. Taking it again with the same execution and token
// returns the lease it already holds, so a retried Acquire is harmless.
func (l *Ledger) Acquire(ctx context.Context, req AcquireRequest) (Lease, error) {
	for attempt := 0; ; attempt++ {
		var cur Lease
		var exists bool
		var err error
		if attempt == 0 && req.Known != nil {
			cur, exists = *req.Known, req.Known.PK != ""
		} else if cur, exists, err = l.Get(ctx, req.Secret); err != nil {
			return Lease{}, err
		}
		now := l.now()
		if exists && cur.Holder == req.Execution && cur.Token == req.Token {
			return cur, nil
		}
		if exists && cur.Held(now) {
			return Lease{}, &HeldError{Holder: cur.Holder, State: cur.State, Until: untilTime(cur)}
		}
		next := Lease{
			PK: pk(req.Secret), SK: leaseSK, Secret: req.Secret,
			Fencing: cur.Fencing + 1, Seq: 1, Holder: req.Execution,
			Until: now.Add(l.leaseFor).UnixMilli(), State: Started, Token: req.Token,
			PreviousVersion: req.PreviousVersion, PreviousPrevious: req.PreviousPrevious,
			StartedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli(),
			Logins: strings.Join(loginKeys(req.Logins), " "),
		}
		if exists && cur.Unfinished() {
			next.TakenOver = &TakenOver{Execution: cur.Holder, Fencing: cur.Fencing, Token: cur.Token, State: cur.State,
				PreviousVersion: cur.PreviousVersion, PreviousPrevious: cur.PreviousPrevious,
				SetMayHaveRun: cur.SetMayHaveRun, FinishMayHaveRun: cur.FinishMayHaveRun}
		}
		item, err := attributevalue.MarshalMap(next)
		if err != nil {
			return Lease{}, err
		}
		put := &types.Put{TableName: &l.table, Item: item}
		if exists {
			// Compare-and-swap on the counter and the journal sequence we
			// read: of many concurrent starts exactly one moves it, and a
			// late write of the holder we take over from (a SET_STARTED
			// landing after our read) makes us read again, so TakenOver
			// never misses a step the dead rotation journaled.
			put.ConditionExpression = aws.String("fencing = :old AND seq = :seq")
			put.ExpressionAttributeValues = map[string]types.AttributeValue{":old": num(cur.Fencing), ":seq": num(cur.Seq)}
		} else {
			put.ConditionExpression = aws.String("attribute_not_exists(pk)")
		}
		rec, err := l.record(next, Record{State: Started, Actor: req.Actor, PreviousVersion: req.PreviousVersion})
		if err != nil {
			return Lease{}, err
		}
		names := map[string]string{}
		for _, lg := range req.Logins {
			names[lg.Key()] = lg.String()
		}
		// The first attempt takes free login locks without reading them;
		// a lock that is not free fails it, and the next attempt reads.
		var locks []types.TransactWriteItem
		if attempt == 0 {
			locks, err = l.freeLocks(next, names, now)
		} else {
			locks, err = l.lockLogins(ctx, next, names, now)
		}
		if err != nil {
			return Lease{}, err
		}
		_, err = l.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
			TransactItems: append([]types.TransactWriteItem{{Put: put}, {Put: rec}}, locks...),
		})
		if lostRace(err) && attempt < 3 {
			// Someone moved the counter or took a login lock: read again
			// and decide again.
			continue
		}
		if err != nil {
			return Lease{}, fmt.Errorf("take lease: %w", err)
		}
		return next, nil
	}
}

// UntilTime is when the lease expires; zero when it never does.
func (l Lease) UntilTime() time.Time { return untilTime(l) }

func untilTime(l Lease) time.Time {
	if l.Until == 0 || l.State == CompensationFailed {
		return time.Time{}
	}
	return time.UnixMilli(l.Until).UTC()
}

// Check confirms that execution still holds the lease with fencing and
// returns it; ErrFenced otherwise. Steps call it before touching anything.
func (l *Ledger) Check(ctx context.Context, secretARN string, fencing int64, execution string) (Lease, error) {
	cur, exists, err := l.Get(ctx, secretARN)
	if err != nil {
		return Lease{}, err
	}
	if !exists || cur.Fencing != fencing || cur.Holder != execution {
		return Lease{}, ErrFenced
	}
	return cur, nil
}

// Change is what a journal write does to the lease besides appending the
// record.
type Change struct {
	SetMayHaveRun    bool // set once SET_STARTED is journaled
	FinishMayHaveRun bool // set once FINISH_STARTED is journaled
	Release          bool // the lease becomes free
	Hold             bool // the lease is kept with no expiry (COMPENSATION_FAILED)
	// Clone, if set, records a user this rotation is about to create (the
	// alternating strategy's other user), in the same transaction as the
	// record: written before the target is touched.
	Clone *Clone
	// Still, if set, is asked after a lost race with the lease as it is now
	// (same holder and fencing, a later sequence: this rotation's own write
	// whose answer was lost, or a lease the caller knew from an earlier
	// step): false means the record is no longer needed (the journal went
	// past it), and Append writes nothing, leaving *lease the current one.
	Still func(cur Lease) bool
	// Then, if set, is a second record journaled right after rec in the
	// same transaction; the lease ends in its state. A record that need
	// not be written alone goes into the next write this way: finish's
	// FINISH_DONE and FINISHED (with Release) when the rotation has no
	// bake; set's SET_DONE before test's TESTED, or before
	// COMPENSATE_STARTED when the test failed. The journal reads as
	// before, with fewer transactions.
	Then *Record
}

// Append journals rec for the rotation that holds lease and applies ch, in one
// transaction conditioned on the lease's fencing token, holder and sequence.
// It updates *lease on success. A lost lease is ErrFenced; nothing is written.
func (l *Ledger) Append(ctx context.Context, lease *Lease, rec Record, ch Change) error {
	for attempt := 0; ; attempt++ {
		next := *lease
		next.Seq++
		next.State = rec.State
		if ch.Then != nil {
			next.Seq++
			next.State = ch.Then.State
		}
		now := l.now()
		next.UpdatedAt = now.UnixMilli()
		next.Until = now.Add(l.leaseFor).UnixMilli()
		next.SetMayHaveRun = lease.SetMayHaveRun || ch.SetMayHaveRun
		next.FinishMayHaveRun = lease.FinishMayHaveRun || ch.FinishMayHaveRun
		if ch.Hold {
			next.Until = 0
		}
		if ch.Release {
			next.Holder = ""
			next.Until = 0
		}
		next.Repair = next.Repair.Entered(lease.State, rec.State, now)
		if ch.Then != nil {
			next.Repair = next.Repair.Entered(rec.State, ch.Then.State, now)
		}
		item, err := attributevalue.MarshalMap(next)
		if err != nil {
			return err
		}
		// Each record has its own sequence number: rec takes the first
		// after the lease's, Then the next.
		first := next
		first.Seq = lease.Seq + 1
		recs := []Record{rec}
		if ch.Then != nil {
			recs = append(recs, *ch.Then)
		}
		var puts []types.TransactWriteItem
		for i, r := range recs {
			r.Execution = lease.Holder // next.Holder is cleared by a release
			at := first
			at.Seq += int64(i)
			put, err := l.record(at, r)
			if err != nil {
				return err
			}
			puts = append(puts, types.TransactWriteItem{Put: put})
		}
		locks, err := l.loginOps(ctx, *lease, ch.Release, now)
		if err != nil {
			return fmt.Errorf("journal %s: %w", rec.State, err)
		}
		clone, err := l.clonePut(*lease, ch.Clone)
		if err != nil {
			return err
		}
		_, err = l.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
			TransactItems: append([]types.TransactWriteItem{
				{Put: &types.Put{
					TableName: &l.table, Item: item,
					ConditionExpression: aws.String("fencing = :f AND holder = :h AND seq = :s"),
					ExpressionAttributeValues: map[string]types.AttributeValue{
						":f": num(lease.Fencing), ":h": &types.AttributeValueMemberS{Value: lease.Holder},
						":s": num(lease.Seq),
					},
					ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
				}},
			}, append(puts, append(locks, clone...)...)...),
		})
		if err == nil {
			*lease = next
			return nil
		}
		for i := 1 + len(puts); i < 1+len(puts)+len(locks); i++ {
			if conditionFailed(err, i) {
				// Another secret's rotation took the login over after
				// this lease expired: this rotation must stop.
				return fmt.Errorf("journal %s: a login lock is no longer this rotation's: %w", rec.State, ErrFenced)
			}
		}
		if !conditionFailed(err, 0) {
			return fmt.Errorf("journal %s: %w", rec.State, err)
		}
		// The lease changed under us. Same holder and token, later sequence:
		// an earlier attempt of ours whose answer was lost, or a retried
		// step; re-read and append after it. Anything else: fenced.
		cur, err := l.Check(ctx, lease.Secret, lease.Fencing, lease.Holder)
		if err != nil {
			return err
		}
		if ch.Still != nil && !ch.Still(cur) {
			*lease = cur
			return nil
		}
		if attempt >= 3 {
			return fmt.Errorf("journal %s: sequence kept moving: %w", rec.State, ErrFenced)
		}
		*lease = cur
	}
}

func (l *Ledger) record(lease Lease, r Record) (*types.Put, error) {
	r.PK = lease.PK
	r.SK = journalSK(lease.Fencing, lease.Seq)
	r.Secret = lease.Secret
	r.Fencing = lease.Fencing
	r.Seq = lease.Seq
	if r.Execution == "" {
		r.Execution = lease.Holder
	}
	r.Token = lease.Token
	return l.journalPut(&r.At, &r.ExpiresAt, &r)
}

// journalPut stamps a journal record (rec, a *Record or *EphemeralRecord,
// whose At and ExpiresAt are at and expiresAt) with the time, unless it
// has one, and with its expiry (the table's TTL attribute) when the
// ledger has a retention, and makes the Put that writes it once: a record
// is never overwritten.
func (l *Ledger) journalPut(at, expiresAt *int64, rec any) (*types.Put, error) {
	if *at == 0 {
		*at = l.now().UnixMilli()
	}
	if l.retention > 0 {
		*expiresAt = l.now().Add(l.retention).Unix()
	}
	item, err := attributevalue.MarshalMap(rec)
	if err != nil {
		return nil, err
	}
	return &types.Put{TableName: &l.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(sk)")}, nil
}

// History returns a secret's journal, oldest first.
func (l *Ledger) History(ctx context.Context, secretARN string) ([]Record, error) {
	var recs []Record
	p := dynamodb.NewQueryPaginator(l.api, &dynamodb.QueryInput{
		TableName: &l.table, ConsistentRead: aws.Bool(true),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :j)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: pk(secretARN)},
			":j":  &types.AttributeValueMemberS{Value: "J#"},
		},
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read journal: %w", err)
		}
		for _, it := range out.Items {
			r, err := DecodeRecord(it)
			if err != nil {
				return nil, err
			}
			recs = append(recs, r)
		}
	}
	return recs, nil
}

// lostRace reports whether err is a cancelled transaction that lost to a
// concurrent writer: a condition that no longer held, or DynamoDB's
// TransactionConflict with another transaction on the same item.
func lostRace(err error) bool {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) {
		return false
	}
	for _, r := range tc.CancellationReasons {
		if c := aws.ToString(r.Code); c == "ConditionalCheckFailed" || c == "TransactionConflict" {
			return true
		}
	}
	return false
}

// conditionFailed reports whether err is a cancelled transaction whose item
// at index failed its condition.
func conditionFailed(err error, index int) bool {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) || index >= len(tc.CancellationReasons) {
		return false
	}
	return aws.ToString(tc.CancellationReasons[index].Code) == "ConditionalCheckFailed"
}

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
