package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

// fakeSecrets keeps one secret with Secrets Manager's stage rules.
type fakeSecrets struct {
	mu      sync.Mutex
	arn     string
	values  map[string]string
	stages  map[string][]string
	deleted bool
	tags    map[string]string
	// generated are the passwords of the versions create stored, for
	// the leak checks (invariant 5).
	generated []string
	failNext  map[string]error // operation → error, once
	// lostAnswer: operation → error, once, returned after the call took
	// effect (the answer was lost on the way back).
	lostAnswer map[string]error
	// calls counts the calls by operation (Value by version id and by
	// stage alike), for the call budget of a rotation.
	calls map[string]int
	// afterDescribe, if set, runs once right after the next Describe has
	// read the stages: a concurrent actor acting between a step's read
	// and the write that depends on it.
	afterDescribe func()
	// beforeMove, if set, runs once right before the next MoveStage: a
	// concurrent actor acting between a step's journal write and its
	// compare-and-swap (finish reads no stages first).
	beforeMove func()
	binary     map[string]bool // versions that hold SecretBinary
	// others are other secrets' AWSCURRENT values, by id (a master secret).
	others map[string]string
}

func newFakeSecrets(arn, value string) *fakeSecrets {
	return &fakeSecrets{arn: arn, values: map[string]string{"v1-00000000000000000000000000000000": value},
		stages: map[string][]string{"v1-00000000000000000000000000000000": {secretstore.Current}}, tags: map[string]string{}, failNext: map[string]error{}}
}

func (f *fakeSecrets) fail(op string) error {
	name, _, _ := strings.Cut(op, ":")
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[name]++
	if err := f.failNext[op]; err != nil {
		delete(f.failNext, op)
		return err
	}
	return nil
}

func (f *fakeSecrets) holder(stage string) string {
	for v, ss := range f.stages {
		for _, s := range ss {
			if s == stage {
				return v
			}
		}
	}
	return ""
}

func (f *fakeSecrets) Describe(_ context.Context, id string) (secretstore.Description, error) {
	f.mu.Lock()
	if err := f.fail("Describe"); err != nil {
		f.mu.Unlock()
		return secretstore.Description{}, err
	}
	// DescribeSecret's VersionIdsToStages: "A list of the versions of the
	// secret that have staging labels attached. Versions that don't have
	// staging labels are considered deprecated" (and are not listed).
	vs := map[string][]string{}
	for k, v := range f.stages {
		if len(v) > 0 {
			vs[k] = append([]string(nil), v...)
		}
	}
	hook := f.afterDescribe
	f.afterDescribe = nil
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return secretstore.Description{ARN: f.arn, Name: "app/db", Deleted: f.deleted, Versions: vs, Tags: f.tags}, nil
}

// known is Secrets Manager's lookup: the secret's ARN or its name, nothing
// else (an empty id included).
func (f *fakeSecrets) known(id string) error {
	if id != f.arn && id != "app/db" {
		return &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
	}
	return nil
}

func (f *fakeSecrets) Value(_ context.Context, id, versionID, stage string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.others[id]; ok {
		return v, nil
	}
	if err := f.fail("Value:" + versionID); err != nil { // a read by version id
		return "", err
	}
	if err := f.known(id); err != nil {
		return "", err
	}
	if versionID == "" {
		versionID = f.holder(stage)
	}
	v, ok := f.values[versionID]
	if !ok {
		return "", secretstore.ErrNoSuchVersion
	}
	if f.binary[versionID] {
		return "", secretstore.ErrBinary
	}
	return v, nil
}

// Current is GetSecretValue by the AWSCURRENT stage: its version id and
// value.
func (f *fakeSecrets) Current(_ context.Context, id string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Current"); err != nil {
		return "", "", err
	}
	if err := f.known(id); err != nil {
		return "", "", err
	}
	cur := f.holder(secretstore.Current)
	v, ok := f.values[cur]
	switch {
	case !ok:
		return "", "", secretstore.ErrNoSuchVersion
	case f.binary[cur]:
		return cur, "", secretstore.ErrBinary
	}
	return cur, v, nil
}

// HasVersion is ListSecretVersionIds with IncludeDeprecated: every version,
// labelled or not.
func (f *fakeSecrets) HasVersion(_ context.Context, id, versionID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("HasVersion"); err != nil {
		return false, err
	}
	_, ok := f.values[versionID]
	return ok, nil
}

// Filled is secretstore.Store.Filled over the fake: a version is listed
// when it has an entry in stages, filled when it has one in values.
func (f *fakeSecrets) Filled(_ context.Context, id, versionID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Filled"); err != nil {
		return false, err
	}
	if _, ok := f.values[versionID]; ok {
		return true, nil
	}
	if _, listed := f.stages[versionID]; !listed {
		return false, secretstore.ErrNoSuchVersion
	}
	return false, nil
}

// rotateSecret is what Secrets Manager's RotateSecret does before it
// invokes the rotation function: "During rotation, Secrets Manager creates
// an AWSPENDING version ID before creating the new secret version"
// (DescribeSecret, VersionIdsToStages). The version has AWSPENDING and no
// value.
func (f *fakeSecrets) rotateSecret(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.move(secretstore.Pending, token)
}

func (f *fakeSecrets) PutPending(_ context.Context, id, token, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("PutPending"); err != nil {
		return err
	}
	if old, ok := f.values[token]; ok {
		if old != value {
			return &types.ResourceExistsException{}
		}
		return nil
	}
	f.values[token] = value
	f.move(secretstore.Pending, token)
	var v struct{ Password string }
	if json.Unmarshal([]byte(value), &v) == nil && v.Password != "" {
		f.generated = append(f.generated, v.Password)
	}
	if err := f.lostAnswer["PutPending"]; err != nil {
		delete(f.lostAnswer, "PutPending")
		return err
	}
	return nil
}

func (f *fakeSecrets) move(stage, to string) {
	for v, ss := range f.stages {
		f.stages[v] = remove(ss, stage)
	}
	if to != "" {
		f.stages[to] = append(f.stages[to], stage)
	}
}

func remove(ss []string, s string) []string {
	var out []string
	for _, x := range ss {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func (f *fakeSecrets) MoveStage(_ context.Context, id, stage, to, from string) error {
	f.mu.Lock()
	hook := f.beforeMove
	f.beforeMove = nil
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("MoveStage"); err != nil {
		return err
	}
	if h := f.holder(stage); h != "" && h != from && h != to {
		return &types.InvalidParameterException{Message: new(string)}
	}
	if stage == secretstore.Current {
		if old := f.holder(stage); old != to {
			f.move(secretstore.Previous, old)
		}
	}
	f.move(stage, to)
	return nil
}

func (f *fakeSecrets) RemoveStage(_ context.Context, id, stage, from string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("RemoveStage"); err != nil {
		return err
	}
	if f.holder(stage) != from {
		return &types.InvalidParameterException{Message: new(string)}
	}
	f.move(stage, "")
	return nil
}

// fakeLedger is an in-memory ledger with the same conditions as DynamoDB's.
type fakeLedger struct {
	mu      sync.Mutex
	lease   map[string]ledger.Lease
	journal []ledger.Record
	fail    error
	now     func() time.Time // the clock of the repair queue (nil: time.Now)
	// logins: lock key → the secret whose lease locked it; a lock is held
	// while that secret's lease has a holder (as in the ledger).
	logins map[string]string
	// requested are the logins of the last Acquire.
	requested []ledger.Login
	// clones are the clone records, by PK.
	clones map[string]ledger.Clone
	// failOn fails the next Append of a record in that state, once.
	failOn map[ledger.State]error
	// lostOn makes the next Append of a record in that state take effect
	// and then fail, once: a write whose answer was lost.
	lostOn map[ledger.State]error
	// failClear fails the next ClearRepair, once.
	failClear error
	// gets and appends count the calls, for the call budget of a rotation.
	gets, appends int
	// beforeAppend, if set, runs once right before the next Append: another
	// actor acting between a step's read of the lease and its write.
	beforeAppend func()
	// afterRelease, if set, runs once right after the next Append that
	// released the lease: another actor acting the moment it is free.
	afterRelease func()
}

func (f *fakeLedger) Clone(_ context.Context, login ledger.Login) (ledger.Clone, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clones[ledger.NewClone(login, "").PK]
	return c, ok, nil
}

func (f *fakeLedger) Table() string { return "ledger" }

func (f *fakeLedger) Get(_ context.Context, arn string) (ledger.Lease, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	l, ok := f.lease[arn]
	return l, ok, nil
}

func (f *fakeLedger) Acquire(_ context.Context, r ledger.AcquireRequest) (ledger.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.lease[r.Secret]
	if ok && cur.Holder == r.Execution && cur.Token == r.Token {
		return cur, nil
	}
	if ok && cur.Holder != "" {
		return ledger.Lease{}, &ledger.HeldError{Holder: cur.Holder, State: cur.State}
	}
	f.requested = r.Logins
	for _, lg := range r.Logins {
		if other := f.logins[lg.Key()]; other != "" && other != r.Secret && f.lease[other].Holder != "" {
			o := f.lease[other]
			return ledger.Lease{}, &ledger.LoginHeldError{Login: lg.String(), Secret: other, Holder: o.Holder, State: o.State}
		}
	}
	if f.logins == nil {
		f.logins = map[string]string{}
	}
	for _, lg := range r.Logins {
		f.logins[lg.Key()] = r.Secret
	}
	l := ledger.Lease{Secret: r.Secret, Fencing: cur.Fencing + 1, Seq: 1, Holder: r.Execution, Token: r.Token,
		State: ledger.Started, PreviousVersion: r.PreviousVersion, PreviousPrevious: r.PreviousPrevious, Until: 1}
	f.lease[r.Secret] = l
	f.journal = append(f.journal, ledger.Record{State: ledger.Started, Fencing: l.Fencing})
	return l, nil
}

func (f *fakeLedger) Append(_ context.Context, l *ledger.Lease, rec ledger.Record, ch ledger.Change) error {
	f.mu.Lock()
	f.appends++
	if hook := f.beforeAppend; hook != nil {
		f.beforeAppend = nil
		f.mu.Unlock()
		hook()
		f.mu.Lock()
	}
	if f.fail != nil {
		f.mu.Unlock()
		return f.fail
	}
	for _, st := range []ledger.State{rec.State, thenState(ch)} {
		if err := f.failOn[st]; err != nil {
			delete(f.failOn, st)
			f.mu.Unlock()
			return err
		}
	}
	hook := f.afterRelease
	if ch.Release {
		f.afterRelease = nil
	}
	err := f.append(l, rec, ch)
	for _, st := range []ledger.State{rec.State, thenState(ch)} {
		if lost := f.lostOn[st]; lost != nil && err == nil {
			delete(f.lostOn, st)
			err = lost
		}
	}
	f.mu.Unlock()
	if err == nil && ch.Release && hook != nil {
		hook()
	}
	return err
}

func (f *fakeLedger) append(l *ledger.Lease, rec ledger.Record, ch ledger.Change) error {
	cur := f.lease[l.Secret]
	if cur.Fencing != l.Fencing || cur.Holder != l.Holder {
		return ledger.ErrFenced
	}
	if cur.Seq != l.Seq {
		// As ledger.Append after a lost race: the lease moved on under the
		// same holder (a stale lease from an earlier step, or a write whose
		// answer was lost): ask whether the record is still needed, and
		// append after the lease as it is.
		if ch.Still != nil && !ch.Still(cur) {
			*l = cur
			return nil
		}
		*l = cur
	}
	n := *l
	n.Seq++
	n.State = rec.State
	first := n
	if ch.Then != nil {
		n.Seq++
		n.State = ch.Then.State
	}
	n.SetMayHaveRun = n.SetMayHaveRun || ch.SetMayHaveRun
	n.FinishMayHaveRun = n.FinishMayHaveRun || ch.FinishMayHaveRun
	if ch.Release {
		n.Holder = ""
	}
	n.Repair = n.Repair.Entered(l.State, rec.State, f.clock())
	f.lease[l.Secret] = n
	*l = n
	if ch.Clone != nil {
		if f.clones == nil {
			f.clones = map[string]ledger.Clone{}
		}
		f.clones[ch.Clone.PK] = *ch.Clone
	}
	rec.Fencing, rec.Seq, rec.Token, rec.Secret = first.Fencing, first.Seq, first.Token, first.Secret
	f.journal = append(f.journal, rec)
	if ch.Then != nil {
		then := *ch.Then
		then.Fencing, then.Seq, then.Token, then.Secret = n.Fencing, n.Seq, n.Token, n.Secret
		f.journal = append(f.journal, then)
	}
	return nil
}

// thenState is the state of a Change's second record ("" without one).
func thenState(ch ledger.Change) ledger.State {
	if ch.Then == nil {
		return ""
	}
	return ch.Then.State
}

// fakeEngine is a database with one user.
type fakeEngine struct {
	mu       sync.Mutex
	password string
	failSet  error
	failTest error
	// failVerifyAfterSet becomes failTest after the next SetPassword that
	// changed the password: a change the server acknowledged but that did
	// not take.
	failVerifyAfterSet error
	// beforeSet, if set, runs at every SetPassword, before it changes
	// anything (the fake's lock held: it must not call the engine).
	beforeSet func()
	down      bool // every call: unreachable
	sets      int
	logins    int                  // sessions opened or refused (Verify and SetPassword's logins)
	caps      *target.Capabilities // nil: single user only
	users     map[string]string    // alternating: users other than the secret's, with their clone marks
	created   []string             // users EnsureUser created
}

func (e *fakeEngine) Name() string     { return "fake" }
func (e *fakeEngine) DefaultPort() int { return 1 }
func (e *fakeEngine) Capabilities() target.Capabilities {
	if e.caps != nil {
		return *e.caps
	}
	return target.Capabilities{SingleUser: true}
}

func (e *fakeEngine) SetPassword(_ context.Context, r target.SetPasswordRequest) (target.SetPasswordResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.beforeSet != nil {
		e.beforeSet()
	}
	if e.failSet != nil {
		err := e.failSet
		e.failSet = nil
		return target.SetPasswordResponse{}, err
	}
	if e.down {
		return target.SetPasswordResponse{}, fmt.Errorf("dial: %w", target.ErrUnreachable)
	}
	// The contract every engine follows (target.ChangePassword), over a
	// server that knows one password.
	return target.ChangePassword(context.Background(), "fake", r,
		func(_ context.Context, c target.Credential) (*fakeEngine, error) {
			e.logins++
			if c.Password.Reveal() != e.password {
				return nil, fmt.Errorf("login as %s: %w", c.Username, target.ErrAuthFailed)
			}
			return e, nil
		},
		func(*fakeEngine) {},
		func(ctx context.Context, e *fakeEngine, _ target.Credential) error {
			if r.BeforeChange != nil {
				if err := r.BeforeChange(ctx); err != nil {
					return err
				}
			}
			e.password = r.New.Reveal()
			e.sets++
			if e.failVerifyAfterSet != nil {
				e.failTest, e.failVerifyAfterSet = e.failVerifyAfterSet, nil
			}
			return nil
		})
}

// EnsureUser, with alternating capabilities, keeps the users other than
// the secret's in e.users (user → its clone mark, "" for none).
func (e *fakeEngine) EnsureUser(ctx context.Context, r target.EnsureUserRequest) (target.EnsureUserResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.caps == nil || !e.caps.Alternating {
		return target.EnsureUserResponse{}, fmt.Errorf("fake: %w: %w", target.ErrNotSupported, target.ErrInvalid)
	}
	mark, exists := e.users[r.Username]
	res := target.EnsureUserResponse{Exists: exists, Mark: mark, LikeMark: e.users[r.Like]}
	if exists || r.CheckOnly {
		return res, nil
	}
	if r.BeforeChange != nil {
		if err := r.BeforeChange(ctx); err != nil {
			return res, err
		}
	}
	if e.users == nil {
		e.users = map[string]string{}
	}
	if e.caps.CloneMarks {
		mark = r.Like
	}
	e.users[r.Username] = mark
	e.created = append(e.created, r.Username)
	res.Created, res.Mark = true, mark
	return res, nil
}

func (e *fakeEngine) Verify(_ context.Context, r target.VerifyRequest) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failTest != nil {
		err := e.failTest
		e.failTest = nil
		return err
	}
	if e.down {
		return fmt.Errorf("dial: %w", target.ErrUnreachable)
	}
	e.logins++
	if r.Credential.Password.Reveal() != e.password {
		return fmt.Errorf("login as %s: %w", r.Credential.Username, target.ErrAuthFailed)
	}
	return nil
}

type fakeBus struct {
	mu     sync.Mutex
	events []events.Event
	fail   int // the next fail calls of Publish fail, as a PutEvents that EventBridge refused
}

func (b *fakeBus) Publish(_ context.Context, e events.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail > 0 {
		b.fail--
		return fmt.Errorf("publish %q: %w", e.DetailType, errBoom)
	}
	b.events = append(b.events, e)
	return nil
}

func (b *fakeBus) types() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s []string
	for _, e := range b.events {
		s = append(s, e.DetailType)
	}
	return strings.Join(s, ",")
}

var errBoom = errors.New("boom")

// fakeAlarms is the bake's Alarms over alarms in memory.
type fakeAlarms struct {
	mu        sync.Mutex
	metric    map[string]cwtypes.StateValue
	composite map[string]cwtypes.StateValue
	asked     [][]string // AlarmNames of every call
	// beforeCall, if set, runs before call n (1-based) is answered.
	beforeCall func(f *fakeAlarms, n int)
	fail       error
}

func newFakeAlarms() *fakeAlarms {
	return &fakeAlarms{metric: map[string]cwtypes.StateValue{}, composite: map[string]cwtypes.StateValue{}}
}

func (f *fakeAlarms) set(name string, state cwtypes.StateValue) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metric[name] = state
}

func (f *fakeAlarms) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.asked)
}

func (f *fakeAlarms) AlarmStates(_ context.Context, names []string) (map[string]AlarmState, error) {
	f.mu.Lock()
	f.asked = append(f.asked, append([]string(nil), names...))
	n, hook := len(f.asked), f.beforeCall
	f.mu.Unlock()
	if hook != nil {
		hook(f, n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	out := map[string]AlarmState{}
	for _, name := range names {
		if st, ok := f.metric[name]; ok {
			out[name] = AlarmState{State: string(st), Reason: "Threshold Crossed: 1 datapoint [9.0] was greater than the threshold (5.0)."}
		}
		if st, ok := f.composite[name]; ok {
			out[name] = AlarmState{State: string(st)}
		}
	}
	return out, nil
}
