package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/target"
)

// fakeLedger keeps leases in memory with the ledger's compare-and-swap on
// the sequence number.
type fakeLedger struct {
	mu      sync.Mutex
	leases  map[string]ledger.EphemeralLease
	journal map[string][]ledger.EphemeralRecord
	now     func() time.Time
}

func (f *fakeLedger) GetEphemeral(_ context.Context, id string) (ledger.EphemeralLease, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.leases[id]
	return l, ok, nil
}

func (f *fakeLedger) BeginIssue(_ context.Context, l ledger.EphemeralLease, actor string, due time.Time) (ledger.EphemeralLease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.leases[l.ID]; ok {
		return ledger.EphemeralLease{}, ledger.ErrLeaseExists
	}
	l.State, l.Seq, l.Queue, l.RevokeAt = ledger.Issuing, 1, "OPEN", due.UnixMilli()
	f.leases[l.ID] = l
	f.journal[l.ID] = append(f.journal[l.ID], ledger.EphemeralRecord{State: ledger.Issuing, Actor: actor})
	return l, nil
}

func (f *fakeLedger) Transition(_ context.Context, l *ledger.EphemeralLease, ch ledger.EphemeralChange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leases[l.ID].Seq != l.Seq {
		return ledger.ErrLeaseChanged
	}
	next := *l
	if ch.Apply != nil {
		ch.Apply(&next)
	}
	if ch.Record.State != ledger.Renewed && ch.Record.State != ledger.RevokeFailed {
		next.State = ch.Record.State
	}
	next.Seq++
	switch {
	case next.State == ledger.Revoked:
		next.Queue, next.RevokeAt = "", 0
	case !ch.DueAt.IsZero():
		next.Queue, next.RevokeAt = "OPEN", ch.DueAt.UnixMilli()
	case next.State == ledger.Issued:
		next.Queue, next.RevokeAt = "OPEN", next.NotAfter
	}
	f.leases[l.ID] = next
	f.journal[l.ID] = append(f.journal[l.ID], ch.Record)
	*l = next
	return nil
}

func (f *fakeLedger) DueEphemeral(_ context.Context, now time.Time, _ int) ([]ledger.EphemeralLease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ledger.EphemeralLease
	for _, l := range f.leases {
		if l.Queue != "" && l.RevokeAt <= now.UnixMilli() {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (f *fakeLedger) OpenEphemeral(ctx context.Context) ([]ledger.EphemeralLease, error) {
	return f.DueEphemeral(ctx, time.Unix(1<<40, 0), 0)
}

func (f *fakeLedger) states(id string) []ledger.EphemeralState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ledger.EphemeralState
	for _, r := range f.journal[id] {
		out = append(out, r.State)
	}
	return out
}

// fakeSecrets holds the template, the master and issued secrets.
type fakeSecrets struct {
	mu      sync.Mutex
	values  map[string]string
	tags    map[string]map[string]string
	deleted []string
}

func (f *fakeSecrets) DescribeSecret(_ context.Context, in *sm.DescribeSecretInput, _ ...func(*sm.Options)) (*sm.DescribeSecretOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := aws.ToString(in.SecretId)
	if _, ok := f.values[id]; !ok {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("not found")}
	}
	out := &sm.DescribeSecretOutput{ARN: aws.String(id), Name: aws.String(id)}
	for k, v := range f.tags[id] {
		out.Tags = append(out.Tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out, nil
}

func (f *fakeSecrets) GetSecretValue(_ context.Context, in *sm.GetSecretValueInput, _ ...func(*sm.Options)) (*sm.GetSecretValueOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.values[aws.ToString(in.SecretId)]
	if !ok {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("not found")}
	}
	return &sm.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

func (f *fakeSecrets) CreateSecret(_ context.Context, in *sm.CreateSecretInput, _ ...func(*sm.Options)) (*sm.CreateSecretOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := aws.ToString(in.Name)
	f.values[name] = aws.ToString(in.SecretString)
	f.tags[name] = map[string]string{}
	for _, t := range in.Tags {
		f.tags[name][aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return &sm.CreateSecretOutput{ARN: aws.String(name)}, nil
}

func (f *fakeSecrets) PutSecretValue(context.Context, *sm.PutSecretValueInput, ...func(*sm.Options)) (*sm.PutSecretValueOutput, error) {
	return &sm.PutSecretValueOutput{}, nil
}

func (f *fakeSecrets) DeleteSecret(_ context.Context, in *sm.DeleteSecretInput, _ ...func(*sm.Options)) (*sm.DeleteSecretOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.values, aws.ToString(in.SecretId))
	f.deleted = append(f.deleted, aws.ToString(in.SecretId))
	return &sm.DeleteSecretOutput{}, nil
}

func (f *fakeSecrets) TagResource(context.Context, *sm.TagResourceInput, ...func(*sm.Options)) (*sm.TagResourceOutput, error) {
	return &sm.TagResourceOutput{}, nil
}

func (f *fakeSecrets) ListSecrets(_ context.Context, in *sm.ListSecretsInput, _ ...func(*sm.Options)) (*sm.ListSecretsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &sm.ListSecretsOutput{}
	for id, tags := range f.tags {
		if _, ok := tags[TagTemplate]; !ok {
			continue
		}
		e := smtypes.SecretListEntry{ARN: aws.String(id), Name: aws.String(id)}
		for k, v := range tags {
			e.Tags = append(e.Tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		out.SecretList = append(out.SecretList, e)
	}
	return out, nil
}

// fakeEngine is a database: its users, and a switch that makes it
// unreachable.
type fakeEngine struct {
	mu    sync.Mutex
	users map[string]bool
	down  bool
	drops int
}

func (e *fakeEngine) Name() string                                       { return "postgres" }
func (e *fakeEngine) DefaultPort() int                                   { return 5432 }
func (e *fakeEngine) Capabilities() target.Capabilities                  { return target.Capabilities{Dynamic: true} }
func (e *fakeEngine) Verify(context.Context, target.VerifyRequest) error { return e.err() }
func (e *fakeEngine) SetPassword(context.Context, target.SetPasswordRequest) (target.SetPasswordResponse, error) {
	return target.SetPasswordResponse{}, target.ErrNotSupported
}
func (e *fakeEngine) EnsureUser(context.Context, target.EnsureUserRequest) (target.EnsureUserResponse, error) {
	return target.EnsureUserResponse{}, target.ErrNotSupported
}

func (e *fakeEngine) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return fmt.Errorf("connection refused: %w", target.ErrUnreachable)
	}
	return nil
}

func (e *fakeEngine) NewUser(ctx context.Context, req target.NewUserRequest) (target.NewUserResponse, error) {
	if err := e.err(); err != nil {
		return target.NewUserResponse{}, err
	}
	if req.Role != "reader" {
		return target.NewUserResponse{}, fmt.Errorf("role %q: %w: %w", req.Role, target.ErrRoleNotFound, target.ErrInvalid)
	}
	if err := req.BeforeChange(ctx); err != nil {
		return target.NewUserResponse{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users[req.Username] = true
	return target.NewUserResponse{}, nil
}

func (e *fakeEngine) DeleteUser(_ context.Context, req target.DeleteUserRequest) (target.DeleteUserResponse, error) {
	if err := e.err(); err != nil {
		return target.DeleteUserResponse{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	existed := e.users[req.Username]
	delete(e.users, req.Username)
	e.drops++
	return target.DeleteUserResponse{Existed: existed}, nil
}

func (e *fakeEngine) RenewUser(context.Context, target.RenewUserRequest) error { return e.err() }

func (e *fakeEngine) ListUsers(_ context.Context, req target.ListUsersRequest) ([]string, error) {
	if err := e.err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for u := range e.users {
		if strings.HasPrefix(u, req.Prefix) {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}

type fakeBus struct {
	mu     sync.Mutex
	events []events.Event
}

func (b *fakeBus) Publish(_ context.Context, e events.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, e)
	return nil
}

func (b *fakeBus) count(detailType string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.events {
		if e.DetailType == detailType {
			n++
		}
	}
	return n
}

type fixture struct {
	svc     *Service
	ledger  *fakeLedger
	secrets *fakeSecrets
	db      *fakeEngine
	bus     *fakeBus
	clock   *time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clock := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := &fixture{clock: &clock, db: &fakeEngine{users: map[string]bool{}}, bus: &fakeBus{},
		secrets: &fakeSecrets{values: map[string]string{
			"tpl":    `{"engine":"postgres","host":"db","port":5432,"dbname":"app","masterarn":"master","role":"reader","max_ttl":"1h"}`,
			"master": `{"engine":"postgres","host":"db","port":5432,"username":"admin","password":"pw-master-1","dbname":"app"}`,
		}, tags: map[string]map[string]string{"tpl": {TagTemplate: "g"}, "master": {}}}}
	now := func() time.Time { return *f.clock }
	f.ledger = &fakeLedger{leases: map[string]ledger.EphemeralLease{}, journal: map[string][]ledger.EphemeralRecord{}, now: now}
	reg := &target.Registry{}
	reg.Register(f.db)
	f.svc = &Service{Secrets: f.secrets, Ledger: f.ledger, Engines: reg, Events: f.bus, Actor: "test", Now: now, AlertAfter: 2}
	return f
}

func (f *fixture) advance(d time.Duration) { *f.clock = f.clock.Add(d) }

func (f *fixture) issue(t *testing.T, ttl string) Lease {
	t.Helper()
	l, err := f.svc.Issue(context.Background(), IssueInput{TemplateId: "tpl", TTL: ttl, ExecutionArn: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRenew(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	l := f.issue(t, "10m")
	f.advance(5 * time.Minute)
	r, err := f.svc.Renew(ctx, RenewInput{LeaseId: l.LeaseId, TTL: "30m"})
	if err != nil || r.NotAfter != "2026-01-01T12:35:00Z" {
		t.Fatalf("renew: %+v, %v", r, err)
	}
	// Past the max (issued at 12:00 with max_ttl 1h).
	var ie *faults.InputError
	if _, err := f.svc.Renew(ctx, RenewInput{LeaseId: l.LeaseId, TTL: "56m"}); !errors.As(err, &ie) || !strings.Contains(err.Error(), "2026-01-01T13:00:00Z") {
		t.Fatalf("renew past the max: %v", err)
	}
	// The sweeper does not take a renewed lease at its first expiry.
	f.advance(10 * time.Minute)
	if out, _ := f.svc.Sweep(ctx, SweepInput{SkipCrossCheck: true}); out.Due != 0 {
		t.Fatalf("renewed lease swept at its first expiry: %+v", out)
	}
	if _, err := f.svc.Revoke(ctx, LeaseInput{LeaseId: l.LeaseId}); err != nil {
		t.Fatal(err)
	}
	var ce *faults.ConflictError
	if _, err := f.svc.Renew(ctx, RenewInput{LeaseId: l.LeaseId, TTL: "5m"}); !errors.As(err, &ce) {
		t.Fatalf("renew of a revoked lease: %v", err)
	}
}

// TestRevocationFailsThenSweeps: the database is down; each failed attempt
// is journaled with a later due time, Revocation Failed goes out once after
// AlertAfter attempts, and the sweeper revokes once the database is back.
func TestRevocationFailsThenSweeps(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	l := f.issue(t, "10m")
	f.db.down = true
	f.advance(10 * time.Minute)
	for i := range 3 {
		out, err := f.svc.Sweep(ctx, SweepInput{SkipCrossCheck: true})
		if err != nil || len(out.Failed) != 1 {
			t.Fatalf("sweep %d: %+v, %v", i, out, err)
		}
		cur, _, _ := f.ledger.GetEphemeral(ctx, l.LeaseId)
		if cur.State != ledger.Revoking || cur.RevokeAttempts != i+1 || !cur.RevokeAtTime().After(*f.clock) {
			t.Fatalf("after attempt %d: %+v", i+1, cur)
		}
		// Not due again before its backoff.
		if out, _ := f.svc.Sweep(ctx, SweepInput{SkipCrossCheck: true}); out.Due != 0 {
			t.Fatalf("due again at once: %+v", out)
		}
		f.advance(MaxRetryAfter)
	}
	if n := f.bus.count(events.RevocationFailed); n != 1 {
		t.Fatalf("%d Revocation Failed events, want 1", n)
	}
	f.db.down = false
	out, err := f.svc.Sweep(ctx, SweepInput{SkipCrossCheck: true})
	if err != nil || !slices.Equal(out.Revoked, []string{l.LeaseId}) {
		t.Fatalf("sweep after the database returned: %+v, %v", out, err)
	}
	if f.db.users[l.LeaseId] || !slices.Contains(f.secrets.deleted, SecretName(l.LeaseId)) {
		t.Fatal("the login or its secret is still there")
	}
	want := []ledger.EphemeralState{ledger.Issuing, ledger.Issued, ledger.Revoking, ledger.RevokeFailed, ledger.Revoking, ledger.RevokeFailed,
		ledger.Revoking, ledger.RevokeFailed, ledger.Revoking, ledger.Revoked}
	if got := f.ledger.states(l.LeaseId); !slices.Equal(got, want) {
		t.Fatalf("journal %v\nwant    %v", got, want)
	}
}

// TestCrossCheck: a login with the prefix that no lease names is announced
// and left alone; one whose lease says REVOKED is dropped again; one whose
// lease expired but is not due in the index is revoked.
func TestCrossCheck(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	foreign := target.NewEphemeralName()
	f.db.users[foreign] = true
	revoked := f.issue(t, "10m")
	if _, err := f.svc.Revoke(ctx, LeaseInput{LeaseId: revoked.LeaseId}); err != nil {
		t.Fatal(err)
	}
	f.db.users[revoked.LeaseId] = true // someone made it again
	expired := f.issue(t, "10m")
	// Its index entry lags (as an eventually consistent index may).
	l := f.ledger.leases[expired.LeaseId]
	l.RevokeAt = f.clock.Add(time.Hour).UnixMilli()
	f.ledger.leases[expired.LeaseId] = l
	live := f.issue(t, "30m")
	f.advance(15 * time.Minute)
	out, err := f.svc.Sweep(ctx, SweepInput{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out.Orphans)
	want := []string{revoked.LeaseId, expired.LeaseId}
	slices.Sort(want)
	if out.CrossChecked != 1 || !slices.Equal(out.Orphans, want) || len(out.Unaccounted) != 1 || !strings.HasPrefix(out.Unaccounted[0], foreign) {
		t.Fatalf("sweep: %+v", out)
	}
	if !f.db.users[foreign] || !f.db.users[live.LeaseId] || f.db.users[revoked.LeaseId] || f.db.users[expired.LeaseId] {
		t.Fatalf("users after the cross-check: %v", f.db.users)
	}
	if f.bus.count(events.EphemeralUnaccounted) != 1 {
		t.Fatal("the unaccounted login was not announced")
	}
}

// TestIssueBadRoleCreatesNothing: the engine refuses the role before its
// BeforeChange, so no lease is journaled and no user made.
func TestIssueBadRoleCreatesNothing(t *testing.T) {
	f := newFixture(t)
	f.secrets.values["tpl"] = strings.Replace(f.secrets.values["tpl"], `"reader"`, `"nobody"`, 1)
	_, err := f.svc.Issue(context.Background(), IssueInput{TemplateId: "tpl", TTL: "5m", ExecutionArn: "x"})
	var ie *faults.InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "role does not exist") {
		t.Fatalf("err = %v", err)
	}
	if len(f.ledger.leases) != 0 || len(f.db.users) != 0 {
		t.Fatalf("leases %v, users %v", f.ledger.leases, f.db.users)
	}
}
