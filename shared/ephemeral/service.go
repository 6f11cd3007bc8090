package ephemeral

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Service) issueGrace() time.Duration {
	if s.IssueGrace > 0 {
		return s.IssueGrace
	}
	return DefaultIssueGrace
}

func (s *Service) alertAfter() int {
	if s.AlertAfter > 0 {
		return s.AlertAfter
	}
	return DefaultAlertAfter
}

// retryAfter is when a lease whose revocation failed attempts times is
// next due: RetryAfter doubling, at most MaxRetryAfter.
func (s *Service) retryAfter(attempts int) time.Duration {
	d := s.RetryAfter
	if d <= 0 {
		d = DefaultRetryAfter
	}
	for i := 1; i < attempts && d < MaxRetryAfter; i++ {
		d *= 2
	}
	return min(d, MaxRetryAfter)
}

// LeaseName is the login name (and lease id) for a requested id: a UUID
// gives a name derived from it, a name already made by
// target.NewEphemeralName is kept, and "" gets a new one.
func LeaseName(id string) (string, error) {
	switch {
	case id == "":
		return target.NewEphemeralName(), nil
	case target.IsEphemeralName(id):
		return id, nil
	}
	return target.EphemeralNameFrom(id)
}

// SecretName is the name of the secret that holds a lease's login.
func SecretName(leaseID string) string { return SecretPrefix + leaseID }

// ceilSecond rounds t up to the whole second, in UTC: the Wait state's
// timestamp and VALID UNTIL have second precision, and neither may end the
// lease early.
func ceilSecond(t time.Time) time.Time {
	t = t.UTC()
	if t.Nanosecond() != 0 {
		t = t.Truncate(time.Second).Add(time.Second)
	}
	return t
}

func rfc3339(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

// output describes a lease for the steps' callers.
func (s *Service) output(l ledger.EphemeralLease) Lease {
	return Lease{
		LeaseId: l.ID, Username: l.ID, SecretArn: l.Secret, Template: l.Template, Engine: l.Engine,
		Host: l.Host, Port: l.Port, Role: l.Role, Owner: l.Owner, State: string(l.State),
		NotAfter: rfc3339(l.NotAfter), MaxNotAfter: rfc3339(l.MaxNotAfter),
		Expired: !s.now().Before(l.NotAfterTime()), Revoked: l.State == ledger.Revoked,
	}
}

// Issue creates a login from the template: the master logs in and checks
// the role, ISSUING is journaled, the login is created (PostgreSQL: with
// VALID UNTIL), proved to log in, stored as a secret tagged with its
// expiry and owner, and ISSUED is journaled. A retry (same LeaseId and
// execution) finishes what an earlier attempt started. A failure after
// ISSUING leaves the lease for Revoke (the state machine's compensation,
// or the sweeper after IssueGrace).
func (s *Service) Issue(ctx context.Context, in IssueInput) (Lease, error) {
	id := in.TemplateId
	if strings.TrimSpace(id) == "" {
		return Lease{}, inputErr(id, StepIssue, "TemplateId is required: the name or ARN of a template secret", nil)
	}
	name, err := LeaseName(in.LeaseId)
	if err != nil {
		return Lease{}, inputErr(id, StepIssue, "LeaseId must be a UUID or a name secretsaga issued", err)
	}
	cur, exists, err := s.Ledger.GetEphemeral(ctx, name)
	if err != nil {
		return Lease{}, faults.Classify(err, id, StepIssue)
	}
	if exists {
		switch {
		case cur.Execution != in.ExecutionArn:
			return Lease{}, &faults.ConflictError{Detail: faults.Detail{SecretID: id, Step: StepIssue, Reason: "lease " + name + " belongs to another execution; start a new one"}}
		case cur.State == ledger.Issued:
			return s.output(cur), nil // a retry after a lost reply
		case cur.State != ledger.Issuing:
			return Lease{}, &faults.ConflictError{Detail: faults.Detail{SecretID: id, Step: StepIssue, Reason: "lease " + name + " is " + string(cur.State) + " already (revoked while it was being issued)"}}
		}
	}
	tpl, err := s.template(ctx, id)
	if err != nil {
		return Lease{}, err
	}
	ttl, maxTTL, err := tpl.TTLs(id, in.TTL, in.MaxTTL)
	if err != nil {
		return Lease{}, err
	}
	v := tpl.Value
	master, err := s.master(ctx, id, StepIssue, v.MasterARN, tpl.Engine, v.Host, v.Port)
	if err != nil {
		return Lease{}, err
	}
	policy, err := secretstore.PolicyFromTags(tpl.Tags)
	if err != nil {
		return Lease{}, inputErr(id, StepIssue, "the template's password policy", err)
	}
	pw, err := policy.Generate()
	if err != nil {
		return Lease{}, inputErr(id, StepIssue, "the template's password policy", err)
	}
	now := s.now()
	notAfter, maxNotAfter := ceilSecond(now.Add(ttl)), ceilSecond(now.Add(maxTTL))
	lease := ledger.EphemeralLease{
		ID: name, Template: tpl.ARN, Master: v.MasterARN, Engine: tpl.Engine.Name(), Host: v.Host, Port: v.Port,
		DBName: v.DBName, TLS: string(v.TLS), Role: tpl.Role, Owner: in.Owner, Execution: in.ExecutionArn,
		NotAfter: notAfter.UnixMilli(), MaxNotAfter: maxNotAfter.UnixMilli(),
	}
	if exists {
		// A retry keeps the expiry the first attempt journaled.
		lease = cur
		notAfter = cur.NotAfterTime()
	}
	due := now.Add(s.issueGrace())
	if notAfter.Before(due) {
		due = notAfter
	}
	_, err = tpl.Dyn.NewUser(ctx, target.NewUserRequest{
		Master: master, Username: name, Password: pw, Role: tpl.Role, Expiration: notAfter,
		BeforeChange: func(ctx context.Context) error {
			if exists {
				return nil
			}
			lease, err = s.Ledger.BeginIssue(ctx, lease, s.Actor, due)
			if errors.Is(err, ledger.ErrLeaseExists) {
				return &faults.ConflictError{Detail: faults.Detail{SecretID: id, Step: StepIssue, Reason: "lease " + name + " belongs to another execution", Err: err}}
			}
			return faults.Classify(err, id, StepIssue)
		},
	})
	if err != nil {
		return Lease{}, targetErr(err, id, StepIssue, "create login "+name)
	}
	login := target.Credential{Host: v.Host, Port: v.Port, Username: name, Password: pw, DBName: v.DBName, TLS: v.TLS}
	if err := tpl.Engine.Verify(ctx, target.VerifyRequest{Credential: login}); err != nil {
		if errors.Is(err, target.ErrUnreachable) {
			return Lease{}, targetErr(err, id, StepIssue, "log in as "+name)
		}
		return Lease{}, &faults.TestFailedError{Detail: faults.Detail{SecretID: id, Step: StepIssue, Reason: "the new login " + name + " does not log in", Err: err}}
	}
	arn, err := s.store(ctx, id, lease, v, pw, tpl.Tags[TagTemplate])
	if err != nil {
		return Lease{}, err
	}
	err = s.Ledger.Transition(ctx, &lease, ledger.EphemeralChange{
		Record: ledger.EphemeralRecord{State: ledger.Issued, Actor: s.Actor, Detail: "secret " + arn},
		Apply:  func(l *ledger.EphemeralLease) { l.Secret = arn },
	})
	if errors.Is(err, ledger.ErrLeaseChanged) {
		// Our own write whose answer was lost, or a revoker that came
		// first (the lease expired while it was being issued).
		if cur, ok, gerr := s.Ledger.GetEphemeral(ctx, name); gerr == nil && ok && cur.State == ledger.Issued && cur.Execution == in.ExecutionArn {
			return s.output(cur), nil
		}
		return Lease{}, &faults.ConflictError{Detail: faults.Detail{SecretID: id, Step: StepIssue, Reason: "lease " + name + " was revoked while it was being issued", Err: err}}
	}
	if err != nil {
		return Lease{}, faults.Classify(err, id, StepIssue)
	}
	s.announce(ctx, events.EphemeralIssued, "info", lease, "", "")
	s.log().Info("login issued", "lease", name, "template", tpl.ARN, "owner", in.Owner, "notAfter", rfc3339(lease.NotAfter))
	return s.output(lease), nil
}

// credential is the issued login's secret value: the database-secret
// structure, so existing clients can use it, with its expiry and lease.
type credential struct {
	Engine   string `json:"engine"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Username string `json:"username"`
	Password string `json:"password"`
	DBName   string `json:"dbname,omitempty"`
	TLS      string `json:"tls,omitempty"`
	Expires  string `json:"expires"`
	Lease    string `json:"lease"`
}

// clientToken derives the secret's first version id from the lease, so a
// retried CreateSecret is recognised as the same request.
func clientToken(leaseID string) string {
	h := sha256.Sum256([]byte("secretsaga-ephemeral:" + leaseID))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// store creates the login's secret, tagged with its lease, expiry, owner
// and template. A secret of the lease that exists already (a retry) gets
// the new value as its current version: the retry set a new password.
func (s *Service) store(ctx context.Context, id string, lease ledger.EphemeralLease, v *secret.Value, pw secret.Password, group string) (string, error) {
	doc, err := json.Marshal(credential{Engine: v.Engine, Host: v.Host, Port: v.Port, Username: lease.ID, Password: pw.Reveal(),
		DBName: v.DBName, TLS: string(v.TLS), Expires: rfc3339(lease.NotAfter), Lease: lease.ID})
	if err != nil {
		return "", faults.Classify(err, id, StepIssue)
	}
	value := string(doc)
	name := SecretName(lease.ID)
	tags := []smtypes.Tag{
		{Key: aws.String(TagLease), Value: aws.String(lease.ID)},
		{Key: aws.String(TagExpires), Value: aws.String(rfc3339(lease.NotAfter))},
		{Key: aws.String(TagOwner), Value: aws.String(tagValue(lease.Owner))},
		{Key: aws.String(TagTemplArn), Value: aws.String(lease.Template)},
	}
	if group != "" {
		// The template's group, which the functions' policies match, so
		// the same ABAC rule covers the template and its logins' secrets.
		tags = append(tags, smtypes.Tag{Key: aws.String(TagGroup), Value: aws.String(group)})
	}
	out, err := s.Secrets.CreateSecret(ctx, &sm.CreateSecretInput{
		Name: &name, SecretString: &value, ClientRequestToken: aws.String(clientToken(lease.ID)), Tags: tags,
		Description: aws.String("secretsaga short-lived login " + lease.ID + ", revoked at " + rfc3339(lease.NotAfter)),
	})
	if err == nil {
		return aws.ToString(out.ARN), nil
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ResourceExistsException" {
		return "", faults.Classify(err, id, StepIssue)
	}
	d, err := s.Secrets.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: &name})
	if err != nil {
		return "", faults.Classify(err, id, StepIssue)
	}
	owned := false
	for _, t := range d.Tags {
		if aws.ToString(t.Key) == TagLease && aws.ToString(t.Value) == lease.ID {
			owned = true
		}
	}
	if !owned {
		return "", &faults.ConflictError{Detail: faults.Detail{SecretID: id, Step: StepIssue, Reason: "a secret named " + name + " exists and is not this lease's"}}
	}
	if _, err := s.Secrets.PutSecretValue(ctx, &sm.PutSecretValueInput{SecretId: d.ARN, SecretString: &value}); err != nil {
		return "", faults.Classify(err, id, StepIssue)
	}
	return aws.ToString(d.ARN), nil
}

// tagValue keeps a tag value within Secrets Manager's rules (256
// characters; letters, digits, spaces and _.:/=+-@).
func tagValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" _.:/=+-@", r)) {
			return r
		}
		return '_'
	}, s)
	if s == "" {
		s = "unknown"
	}
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}

// errNoLease is the InputError of a lease id the ledger does not know.
var errNoLease = errors.New("no such lease")

// lease reads a lease (by its id, or the UUID it was made from); one that
// does not exist is an InputError wrapping errNoLease.
func (s *Service) lease(ctx context.Context, id, step string) (ledger.EphemeralLease, error) {
	if strings.TrimSpace(id) == "" {
		return ledger.EphemeralLease{}, inputErr(id, step, "LeaseId is required (secretctl leases lists them)", nil)
	}
	name, err := LeaseName(id)
	if err != nil {
		return ledger.EphemeralLease{}, inputErr(id, step, "LeaseId must be a lease id (ss_eph_...) or the UUID it was made from", nil)
	}
	l, ok, err := s.Ledger.GetEphemeral(ctx, name)
	if err != nil {
		return ledger.EphemeralLease{}, faults.Classify(err, id, step)
	}
	if !ok {
		return ledger.EphemeralLease{}, inputErr(id, step, "no lease with this id; secretctl leases lists the open ones", errNoLease)
	}
	return l, nil
}

// Status reports a lease: the state machine's wait loop asks it whether
// the expiry it waited for still holds (a renewal moves it).
func (s *Service) Status(ctx context.Context, in LeaseInput) (Lease, error) {
	l, err := s.lease(ctx, in.LeaseId, StepStatus)
	if err != nil {
		return Lease{}, err
	}
	return s.output(l), nil
}

// Renew moves an issued lease's expiry to TTL from now; beyond its max TTL
// is an InputError that names the latest expiry allowed. PostgreSQL's VALID
// UNTIL moves first: the ledger's expiry is the one revocation keeps, so a
// failure between the two at worst leaves VALID UNTIL later than needed.
func (s *Service) Renew(ctx context.Context, in RenewInput) (Lease, error) {
	id := in.LeaseId
	ttl, err := parseTTL(in.TTL)
	if err != nil {
		return Lease{}, inputErr(id, StepRenew, fmt.Sprintf("TTL must be a duration of at least %v, like \"15m\"", MinTTL), nil)
	}
	for attempt := 0; ; attempt++ {
		l, err := s.lease(ctx, id, StepRenew)
		if err != nil {
			return Lease{}, err
		}
		if l.State != ledger.Issued {
			return Lease{}, &faults.ConflictError{Detail: faults.Detail{SecretID: id, Step: StepRenew, Reason: "the lease is " + string(l.State) + ", not ISSUED; only a live lease can be renewed"}}
		}
		notAfter := ceilSecond(s.now().Add(ttl))
		if notAfter.After(l.MaxNotAfterTime()) {
			return Lease{}, inputErr(id, StepRenew, fmt.Sprintf("TTL %v goes past the lease's max (%s); ask for at most %v", ttl, l.MaxNotAfterTime().Format(time.RFC3339), l.MaxNotAfterTime().Sub(s.now()).Truncate(time.Second)), nil)
		}
		engine, err := s.Engines.Lookup(l.Engine)
		if err != nil {
			return Lease{}, inputErr(id, StepRenew, "the lease's engine", err)
		}
		dyn, err := target.AsDynamic(engine)
		if err != nil {
			return Lease{}, inputErr(id, StepRenew, "the lease's engine", err)
		}
		master, err := s.master(ctx, id, StepRenew, l.Master, engine, l.Host, l.Port)
		if err != nil {
			return Lease{}, err
		}
		if err := dyn.RenewUser(ctx, target.RenewUserRequest{Master: master, Username: l.ID, Expiration: notAfter}); err != nil {
			return Lease{}, targetErr(err, id, StepRenew, "renew login "+l.ID)
		}
		if l.Secret != "" {
			_, err := s.Secrets.TagResource(ctx, &sm.TagResourceInput{SecretId: &l.Secret, Tags: []smtypes.Tag{{Key: aws.String(TagExpires), Value: aws.String(notAfter.Format(time.RFC3339))}}})
			if err != nil && !secretstore.IsNotFound(err) {
				return Lease{}, faults.Classify(err, id, StepRenew)
			}
		}
		err = s.Ledger.Transition(ctx, &l, ledger.EphemeralChange{
			Record: ledger.EphemeralRecord{State: ledger.Renewed, Actor: s.Actor, NotAfter: notAfter.UnixMilli()},
			Apply:  func(n *ledger.EphemeralLease) { n.NotAfter = notAfter.UnixMilli() },
		})
		if errors.Is(err, ledger.ErrLeaseChanged) && attempt < 3 {
			continue // read again: a revocation may have begun
		}
		if err != nil {
			return Lease{}, faults.Classify(err, id, StepRenew)
		}
		s.log().Info("lease renewed", "lease", l.ID, "notAfter", rfc3339(l.NotAfter))
		return s.output(l), nil
	}
}

// Revoke ends a lease for certain: REVOKING is journaled, the login's
// sessions are ended and it is dropped, its secret deleted, and REVOKED
// journaled. Every part is idempotent, so it is safe to run again, or at the
// same time as another revoker. A failed attempt is journaled
// (REVOKE_FAILED) with when the sweeper should try next, and returned.
func (s *Service) Revoke(ctx context.Context, in LeaseInput) (Lease, error) {
	id := in.LeaseId
	for attempt := 0; ; attempt++ {
		l, err := s.lease(ctx, id, StepRevoke)
		if in.IfExists && errors.Is(err, errNoLease) {
			// The issue failed before it journaled ISSUING: it created
			// nothing (the ledger is written before the database).
			name, _ := LeaseName(id)
			return Lease{LeaseId: name, Username: name, State: "NONE", Revoked: true}, nil
		}
		if err != nil {
			return Lease{}, err
		}
		if in.ExecutionArn != "" && l.Execution != in.ExecutionArn {
			return Lease{}, &faults.ConflictError{Detail: faults.Detail{SecretID: id, Step: StepRevoke, Reason: "the lease belongs to another execution; it revokes its own"}}
		}
		if l.State == ledger.Revoked {
			return s.output(l), nil
		}
		reason := in.Reason
		if reason == "" {
			reason = "revoked"
		}
		rec := ledger.EphemeralRecord{State: ledger.Revoking, Actor: s.Actor, Detail: reason, Execution: in.ExecutionArn}
		if in.Error != nil {
			rec.ErrorClass = in.Error.Error
		}
		err = s.Ledger.Transition(ctx, &l, ledger.EphemeralChange{Record: rec, DueAt: s.now().Add(s.retryAfter(l.RevokeAttempts + 1))})
		if errors.Is(err, ledger.ErrLeaseChanged) && attempt < 3 {
			continue
		}
		if err != nil {
			return Lease{}, faults.Classify(err, id, StepRevoke)
		}
		if err := s.dropAndDelete(ctx, l); err != nil {
			s.failed(ctx, l, err)
			return Lease{}, err
		}
		err = s.Ledger.Transition(ctx, &l, ledger.EphemeralChange{Record: ledger.EphemeralRecord{State: ledger.Revoked, Actor: s.Actor, Detail: reason}})
		if errors.Is(err, ledger.ErrLeaseChanged) && attempt < 3 {
			continue // another revoker finished first, or moved the attempt count
		}
		if err != nil {
			return Lease{}, faults.Classify(err, id, StepRevoke)
		}
		s.announce(ctx, events.EphemeralRevoked, "info", l, "", "")
		s.log().Info("login revoked", "lease", l.ID, "reason", reason)
		return s.output(l), nil
	}
}

// dropAndDelete ends the login's sessions, drops it and deletes its secret.
func (s *Service) dropAndDelete(ctx context.Context, l ledger.EphemeralLease) error {
	engine, err := s.Engines.Lookup(l.Engine)
	if err != nil {
		return inputErr(l.ID, StepRevoke, "the lease's engine", err)
	}
	dyn, err := target.AsDynamic(engine)
	if err != nil {
		return inputErr(l.ID, StepRevoke, "the lease's engine", err)
	}
	master, err := s.master(ctx, l.ID, StepRevoke, l.Master, engine, l.Host, l.Port)
	if err != nil {
		return err
	}
	if _, err := dyn.DeleteUser(ctx, target.DeleteUserRequest{Master: master, Username: l.ID, Role: l.Role}); err != nil {
		return targetErr(err, l.ID, StepRevoke, "drop login "+l.ID)
	}
	// By name, not by the ARN the lease recorded: an issue that died
	// between CreateSecret and ISSUED left a secret the lease does not
	// name. A forced delete of a secret that is not there succeeds.
	name := SecretName(l.ID)
	if _, err := s.Secrets.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: &name, ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil && !secretstore.IsNotFound(err) {
		return faults.Classify(err, l.ID, StepRevoke)
	}
	return nil
}

// failed journals a failed revocation attempt (best effort: the lease is
// REVOKING and due already, so the sweeper comes back even if this write
// is lost) and alerts once the attempts reach AlertAfter.
func (s *Service) failed(ctx context.Context, l ledger.EphemeralLease, cause error) {
	ctx = context.WithoutCancel(ctx)
	class := faults.Name(cause)
	attempts := l.RevokeAttempts + 1
	alert := attempts >= s.alertAfter() && !l.Alerted
	err := s.Ledger.Transition(ctx, &l, ledger.EphemeralChange{
		Record: ledger.EphemeralRecord{State: ledger.RevokeFailed, Actor: s.Actor, ErrorClass: class, Detail: fmt.Sprintf("attempt %d", attempts)},
		Apply: func(n *ledger.EphemeralLease) {
			n.RevokeAttempts = attempts
			n.LastError = class
			n.Alerted = n.Alerted || alert
		},
		DueAt: s.now().Add(s.retryAfter(attempts)),
	})
	if err != nil {
		s.log().Warn("failed revocation not journaled", "lease", l.ID, "error", err.Error())
		return
	}
	s.log().Error("revocation failed", "lease", l.ID, "attempt", attempts, "errorClass", class, "error", cause.Error())
	if alert {
		s.announce(ctx, events.RevocationFailed, "critical", l, class,
			"the login "+l.ID+" on "+l.Host+" may still log in; the sweeper retries it with backoff. Check that the database and the master secret "+l.Master+" work (secretctl leases shows the lease)")
	}
}

// Alert publishes Revocation Failed for a lease whose execution gave up
// retrying (the state machine's last step before it fails); the lease stays
// due, so the sweeper keeps trying. A failed PutEvents is a RetryableError.
func (s *Service) Alert(ctx context.Context, in LeaseInput) (Lease, error) {
	l, err := s.lease(ctx, in.LeaseId, StepAlert)
	if in.IfExists && errors.Is(err, errNoLease) {
		return Lease{LeaseId: in.LeaseId, State: "NONE", Revoked: true}, nil
	}
	if err != nil {
		return Lease{}, err
	}
	if l.State == ledger.Revoked {
		return s.output(l), nil // the sweeper finished it meanwhile
	}
	class := ""
	if in.Error != nil {
		class = in.Error.Error
	}
	err = s.Events.Publish(ctx, s.event(events.RevocationFailed, "critical", l, class,
		"the login "+l.ID+" on "+l.Host+" may still log in; the sweeper retries it with backoff. Check that the database and the master secret "+l.Master+" work"))
	if err != nil {
		return Lease{}, &faults.RetryableError{Detail: faults.Detail{SecretID: l.ID, Step: StepAlert, Reason: "Revocation Failed not published", Err: err}}
	}
	if !l.Alerted {
		_ = s.Ledger.Transition(ctx, &l, ledger.EphemeralChange{
			Record: ledger.EphemeralRecord{State: ledger.RevokeFailed, Actor: s.Actor, ErrorClass: class, Detail: "alerted"},
			Apply:  func(n *ledger.EphemeralLease) { n.Alerted = true },
			DueAt:  time.UnixMilli(l.RevokeAt),
		})
	}
	return s.output(l), nil
}

func (s *Service) event(detailType, severity string, l ledger.EphemeralLease, class, action string) events.Event {
	arn := l.Secret
	if arn == "" {
		arn = l.Template
	}
	return events.Event{DetailType: detailType, Detail: events.Detail{
		SecretARN: arn, ExecutionARN: l.Execution, ErrorClass: class, Severity: severity, Action: action,
		DurationMs: s.now().Sub(l.IssuedAtTime()).Milliseconds(),
		LeaseID:    l.ID, Template: l.Template, Owner: l.Owner, NotAfter: rfc3339(l.NotAfter),
	}}
}

// announce publishes an event; a failure is logged, not returned: the
// outcome is journaled, and failing a finished issue or revocation for its
// announcement would undo or repeat work that is done.
func (s *Service) announce(ctx context.Context, detailType, severity string, l ledger.EphemeralLease, class, action string) {
	if s.Events == nil {
		return
	}
	if err := s.Events.Publish(ctx, s.event(detailType, severity, l, class, action)); err != nil {
		s.log().Error("event not published", "lease", l.ID, "detailType", detailType, "error", err.Error())
	}
}

// List returns the open leases (issuing, issued, being revoked).
func (s *Service) List(ctx context.Context) ([]Lease, error) {
	ls, err := s.Ledger.OpenEphemeral(ctx)
	if err != nil {
		return nil, faults.Classify(err, "", StepStatus)
	}
	out := make([]Lease, 0, len(ls))
	for _, l := range ls {
		out = append(out, s.output(l))
	}
	return out, nil
}
