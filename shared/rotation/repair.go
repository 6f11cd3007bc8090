package rotation

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

// Self-healing (DESIGN.md invariant 7): a COMPENSATION_FAILED state is
// temporary. The repair function, run on a schedule, takes each secret of
// the ledger's repair queue whose next attempt is due and decides from what
// logs in now, not from what the failed rotation meant to do:
//
//   - the database accepts the rotation's new password and the journal
//     says that version passed its test (and no later check failed it):
//     roll forward, i.e. finish (AWSCURRENT to it, compare-and-swap);
//   - the database accepts the AWSCURRENT value: clean up (AWSPENDING off,
//     AWSCURRENT back if the rotation had moved it);
//   - otherwise, if any login can still change the password (the new one,
//     or the master for alternating users): revert the target to the
//     AWSCURRENT value and clean up;
//   - the database (or Secrets Manager) does not answer: change nothing and
//     try again after a backoff that doubles up to MaxBackoff;
//   - no value logs in anywhere, the secret was deleted, or the target has
//     not answered for AlertAfter: a person is needed ("Rotation Repair
//     Needed", with what to do).
//
// Each repair takes the lease over with a new fencing token (never acting
// on a lease someone else moved on), journals REPAIR_STARTED, and ends in
// FINISHED or ROLLED_BACK like any rotation, releasing the lease.

// StepRepair names the repair in errors, logs and the journal.
const StepRepair = "repair"

// Default repair backoff: the first attempt an hour after the failure
// (a database outage that outlasted compensation's retries is rarely
// shorter), doubling to a day; a person is called after a week of silence.
const (
	DefaultRepairBackoff    = time.Hour
	DefaultRepairMaxBackoff = 24 * time.Hour
	DefaultRepairAlertAfter = 7 * 24 * time.Hour
)

// RepairPolicy times the repair's attempts (the repair function's
// REPAIR_BACKOFF, REPAIR_MAX_BACKOFF, REPAIR_ALERT_AFTER). Zero fields take
// the defaults.
type RepairPolicy struct {
	Backoff    time.Duration
	MaxBackoff time.Duration
	AlertAfter time.Duration
}

func (p RepairPolicy) orDefaults() RepairPolicy {
	if p.Backoff <= 0 {
		p.Backoff = DefaultRepairBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultRepairMaxBackoff
	}
	if p.MaxBackoff < p.Backoff {
		p.MaxBackoff = p.Backoff
	}
	if p.AlertAfter <= 0 {
		p.AlertAfter = DefaultRepairAlertAfter
	}
	return p
}

// Delay is how long after an attempt (or the failure, for the first) the
// next one is due, after attempts attempts: Backoff doubling up to
// MaxBackoff.
func (p RepairPolicy) Delay(attempts int) time.Duration {
	p = p.orDefaults()
	d := p.Backoff
	for i := 0; i < attempts && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// RepairLedger is what the repair needs of the ledger besides Ledger
// (*ledger.Ledger implements it).
type RepairLedger interface {
	RepairQueue(ctx context.Context) ([]ledger.Lease, error)
	TakeOverForRepair(ctx context.Context, cur ledger.Lease, execution, actor string) (ledger.Lease, error)
	DeferRepair(ctx context.Context, cur ledger.Lease, note string) (ledger.Lease, error)
	ClearRepair(ctx context.Context, cur ledger.Lease) error
	History(ctx context.Context, secretARN string) ([]ledger.Record, error)
}

// Repair outcomes, per secret.
const (
	RepairRolledForward = "rolled forward"
	RepairCleanedUp     = "cleaned up"
	RepairReverted      = "reverted"
	RepairDeferred      = "deferred"
	RepairNeedsPerson   = "needs a person"
	RepairNotDue        = "not due"
	RepairSkipped       = "skipped"
	// RepairAnnounced: the outcome was journaled by an earlier run whose
	// event was not published; this run published it.
	RepairAnnounced = "announced"
)

// RepairInput is the repair function's input (the schedule passes {}).
type RepairInput struct {
	// SecretId limits the run to one secret; empty: the whole queue.
	SecretId string `json:",omitempty"`
	// IgnoreBackoff attempts every queued secret now (an operator who knows
	// the database is back).
	IgnoreBackoff bool `json:",omitempty"`
}

// UnmarshalJSON: see AcquireInput's.
func (in *RepairInput) UnmarshalJSON(b []byte) error {
	type plain RepairInput
	return faults.DecodeInput(b, (*plain)(in), StepRepair, "the repair function's input")
}

// RepairResult is what one run did to one secret (never a value).
type RepairResult struct {
	SecretArn string
	VersionId string `json:",omitempty"`
	Outcome   string
	// State is the ledger's state afterwards.
	State  string `json:",omitempty"`
	Reason string `json:",omitempty"`
	// NextAttempt is when the next attempt is due, if the secret is still
	// queued (RFC 3339).
	NextAttempt string `json:",omitempty"`
}

// RepairOutput lists what a run did.
type RepairOutput struct {
	Results []RepairResult
}

// Repair runs one pass over the repair queue (or over in.SecretId). It
// returns an error (RetryableError) only when something must be retried
// soon: a secret whose outcome could not be journaled or announced. A
// database that still does not answer is no error: it is rescheduled.
func (s *Service) Repair(ctx context.Context, in RepairInput) (RepairOutput, error) {
	o := s.op(StepRepair, Context{SecretId: in.SecretId})
	out, err := s.repair(ctx, o, in)
	return out, o.done(err, len(out.Results) > 0)
}

func (s *Service) repair(ctx context.Context, o op, in RepairInput) (RepairOutput, error) {
	var out RepairOutput
	rl, ok := s.Ledger.(RepairLedger)
	if !ok {
		return out, o.input("this ledger cannot list the repair queue", nil)
	}
	var queue []ledger.Lease
	if in.SecretId != "" {
		arn := in.SecretId
		d, err := s.Secrets.Describe(ctx, in.SecretId)
		switch {
		case err == nil:
			arn = d.ARN
		case isGone(err) && strings.HasPrefix(arn, "arn:"):
			// Deleted without recovery: the ledger still knows it by ARN.
		default:
			return out, err
		}
		l, ok, err := s.Ledger.Get(ctx, arn)
		if err != nil {
			return out, err
		}
		if ok {
			queue = append(queue, l)
		}
	} else {
		var err error
		if queue, err = rl.RepairQueue(ctx); err != nil {
			return out, err
		}
	}
	var failed []error
	for _, q := range queue {
		res, err := s.repairOne(ctx, rl, q.Secret, in.IgnoreBackoff)
		out.Results = append(out.Results, res)
		if err != nil {
			failed = append(failed, err)
		}
		s.log().Info("repair", "secret", res.SecretArn, "version", res.VersionId, "outcome", res.Outcome, "state", res.State, "reason", res.Reason, "nextAttempt", res.NextAttempt)
	}
	if len(failed) > 0 {
		return out, &faults.RetryableError{Detail: o.detail(fmt.Sprintf("%d of %d secrets in the repair queue need another run soon", len(failed), len(queue)), errors.Join(failed...))}
	}
	return out, nil
}

// repairOne handles one queued secret.
func (s *Service) repairOne(ctx context.Context, rl RepairLedger, arn string, ignoreBackoff bool) (RepairResult, error) {
	res := RepairResult{SecretArn: arn}
	l, ok, err := s.Ledger.Get(ctx, arn)
	if err != nil {
		return res, err
	}
	res.VersionId, res.State = l.Token, string(l.State)
	now := s.now()
	switch {
	case !ok || !l.Queued():
		res.Outcome, res.Reason = RepairSkipped, "no longer in the repair queue"
		return res, nil
	case l.Holder == "":
		// An earlier run journaled the outcome; its event may not be out.
		return s.announce(ctx, rl, l, res, false)
	case l.State != ledger.CompensationFailed && l.Held(now):
		res.Outcome, res.Reason = RepairSkipped, "a repair is in progress"
		return res, nil
	}
	policy := s.RepairPolicy.orDefaults()
	next := l.Repair.LastAtTime().Add(policy.Delay(l.Repair.Attempts))
	if l.State == ledger.CompensationFailed && !ignoreBackoff && now.Before(next) {
		res.Outcome, res.NextAttempt = RepairNotDue, next.UTC().Format(time.RFC3339)
		return res, nil
	}

	o := s.op(StepRepair, Context{SecretId: arn, SecretArn: arn, ClientRequestToken: l.Token, ExecutionArn: l.Holder,
		Fencing: l.Fencing, PreviousVersionId: l.PreviousVersion, PreviousPreviousVersionId: l.PreviousPrevious})
	plan := s.assess(ctx, o, rl, l)
	res.Reason = plan.why
	switch plan.action {
	case actDefer, actPerson:
		return s.deferRepair(ctx, o, rl, l, plan, res)
	}

	// Take the lease over: a new fencing token, so the failed execution
	// (or a dead repair) can write nothing more, and a second repair of
	// the same lease loses.
	holder := "secretsaga-repair/" + rand.Text()[:16]
	rep, err := rl.TakeOverForRepair(ctx, l, holder, s.Actor)
	if errors.Is(err, ledger.ErrNotRepairable) {
		res.Outcome, res.Reason = RepairSkipped, err.Error()
		return res, nil
	}
	if err != nil {
		return res, err
	}
	o.rc.ExecutionArn, o.rc.Fencing = rep.Holder, rep.Fencing
	o.quiet = true
	state, err := s.act(ctx, o, &rep, plan)
	if err != nil {
		return s.repairFailed(ctx, o, rl, rep, res, err)
	}
	res.Outcome = plan.outcome()
	if plan.action == actAbandon {
		res.Outcome = RepairCleanedUp
	}
	// act journaled a terminal state and released the lease; a newer
	// rotation may hold it already, and the event must still describe
	// this one. (Abandon's "NOT_OWNER" journaled nothing.)
	final := s.reread(ctx, o, rep)
	if st := ledger.State(state); st.Terminal() {
		final.State, final.Holder = st, ""
	}
	return s.announce(ctx, rl, final, res, plan.action == actForgotten)
}

// Repair actions.
type repairAction int

const (
	actDefer     repairAction = iota // nothing answers: try later
	actPerson                        // nothing logs in: a person must act
	actForward                       // finish: AWSCURRENT to the token
	actUndo                          // compensate: AWSCURRENT back, target back, AWSPENDING off
	actMasterSet                     // alternating users: the master sets AWSCURRENT's user back, then undo
	actAbandon                       // someone else's AWSCURRENT logs in: only our AWSPENDING goes
	actForgotten                     // the secret is gone for good: end the lease, a person must act
)

// repairPlan is what assess decided, and why.
type repairPlan struct {
	action repairAction
	// dbOnCurrent: AWSCURRENT (or the recorded previous) logs in already,
	// so the undo only cleans up.
	dbOnCurrent bool
	why         string
	// what a person must do, for actPerson and actForgotten
	todo string
}

func (p repairPlan) outcome() string {
	switch p.action {
	case actForward:
		return RepairRolledForward
	case actUndo, actMasterSet:
		if p.dbOnCurrent {
			return RepairCleanedUp
		}
		return RepairReverted
	case actDefer:
		return RepairDeferred
	}
	return RepairNeedsPerson
}

// loginState is what one login attempt said.
type loginState int

const (
	loginNone loginState = iota // no such value
	loginOK
	loginRefused
	loginNoAnswer
)

// login tries a version's value against its target (read-only).
func (s *Service) login(ctx context.Context, o op, versionID string) (loginState, *secret.Value, target.Engine) {
	if versionID == "" {
		return loginNone, nil, nil
	}
	v, eng, err := s.parse(ctx, o, versionID)
	if err != nil {
		// parse returns Secrets Manager's own errors unclassified: a
		// throttled read is no answer (wait), not "no such value" (which
		// could call a person for nothing).
		if faults.Name(faults.Classify(err, o.rc.SecretArn, StepRepair)) == faults.NameRetryable {
			return loginNoAnswer, nil, nil
		}
		return loginNone, nil, nil
	}
	return verdict(eng.Verify(ctx, target.VerifyRequest{Credential: target.FromValue(v)})), v, eng
}

func verdict(err error) loginState {
	switch {
	case err == nil:
		return loginOK
	case errors.Is(err, target.ErrUnreachable):
		return loginNoAnswer
	}
	return loginRefused
}

// assess decides from what logs in now, changing nothing.
func (s *Service) assess(ctx context.Context, o op, rl RepairLedger, l ledger.Lease) repairPlan {
	arn, token, prev := o.rc.SecretArn, l.Token, l.PreviousVersion
	d, err := s.Secrets.Describe(ctx, arn)
	switch {
	case isGone(err):
		return repairPlan{action: actForgotten, why: "the secret no longer exists (deleted without a recovery window)",
			todo: forceDeletedAction}
	case err != nil:
		return repairPlan{action: actDefer, why: "Secrets Manager did not answer: " + faults.Classify(err, arn, StepRepair).Error()}
	case d.Deleted:
		return repairPlan{action: actDefer, why: "the secret is scheduled for deletion, so its values cannot be read",
			todo: deletedAction(arn)}
	}
	cur := d.VersionWith(secretstore.Current)
	curLogin, curValue, eng := s.login(ctx, o, cur)
	tokenLogin := loginNone
	if token != cur {
		// Labelled or not: an unlabelled version is still read by its id,
		// and one that does not exist reads as loginNone (a ConflictError).
		tokenLogin, _, _ = s.login(ctx, o, token)
	}
	prevLogin := loginNone
	if cur == token {
		prevLogin, _, _ = s.login(ctx, o, prev)
	}
	if curLogin == loginNoAnswer || tokenLogin == loginNoAnswer || prevLogin == loginNoAnswer {
		return repairPlan{action: actDefer, why: "the target (or Secrets Manager) does not answer"}
	}
	switch cur {
	case token, prev:
	default:
		// Someone else moved AWSCURRENT while the lease was held: their
		// version is never undone.
		if curLogin == loginOK {
			return repairPlan{action: actAbandon, dbOnCurrent: true, why: "AWSCURRENT is version " + cur + ", which another actor put there, and it logs in"}
		}
		return repairPlan{action: actPerson, why: "AWSCURRENT is version " + cur + ", which another actor put there, and it does not log in",
			todo: "AWSCURRENT was moved by someone else and does not log in: make it authenticate against the target (or move AWSCURRENT to a version that does); the next repair run then removes this rotation's AWSPENDING."}
	}
	tokenLogsIn := tokenLogin == loginOK || (cur == token && curLogin == loginOK)
	if tokenLogsIn && s.passedTest(ctx, rl, arn, token) {
		return repairPlan{action: actForward, why: "the target accepts version " + token + ", which passed its test"}
	}
	currentLogsIn := (cur == prev && curLogin == loginOK) || (cur == token && prevLogin == loginOK)
	switch {
	case currentLogsIn:
		return repairPlan{action: actUndo, dbOnCurrent: true, why: "the target accepts the AWSCURRENT value the rotation started from"}
	case tokenLogsIn && !s.alternating(curValue):
		return repairPlan{action: actUndo, why: "the target accepts version " + token + ", which was not proven: reverting to " + prev}
	}
	if s.alternating(curValue) { // curValue parsed, so eng is its engine
		if m, err := s.master(ctx, o, curValue, eng); err == nil {
			switch verdict(eng.Verify(ctx, target.VerifyRequest{Credential: target.FromValue(m)})) {
			case loginOK:
				return repairPlan{action: actMasterSet, why: "only the master logs in: it sets the AWSCURRENT user's password back"}
			case loginNoAnswer:
				return repairPlan{action: actDefer, why: "the target does not answer"}
			}
		}
	}
	return repairPlan{action: actPerson, why: "no version of the secret logs in to the target",
		todo: "No value logs in: as a database administrator, set the user's password to the secret's AWSCURRENT value (aws secretsmanager get-secret-value --secret-id " + arn + "); the next repair run then cleans up and releases the lease."}
}

func (s *Service) alternating(v *secret.Value) bool { return v != nil && v.MasterARN != "" }

// passedTest reports whether the journal says the token's version passed
// its test and no later check (the bake) failed it.
func (s *Service) passedTest(ctx context.Context, rl RepairLedger, arn, token string) bool {
	hist, err := rl.History(ctx, arn)
	if err != nil {
		return false // unproven: never roll forward on a guess
	}
	tested := false
	for _, r := range hist {
		if r.Token != token {
			continue
		}
		switch r.State {
		case ledger.Tested, ledger.FinishStarted, ledger.FinishDone, ledger.Verified:
			tested = true
		}
		if r.ErrorClass == faults.NameTestFailed {
			return false
		}
	}
	return tested
}

// act carries out the plan under the repair's lease and returns the final
// ledger state.
func (s *Service) act(ctx context.Context, o op, l *ledger.Lease, p repairPlan) (string, error) {
	switch p.action {
	case actForward:
		return s.rollForward(ctx, o, l, p)
	case actMasterSet:
		if err := s.masterSetCurrent(ctx, o); err != nil {
			return "", err
		}
	case actAbandon:
		var out CloseOutput
		err := s.abandon(ctx, o, l, CloseInput{Rotation: o.rc, Mode: ModeAbandon, Error: &TaskError{Error: faults.NameCompensationFailed}}, &out)
		return out.State, err
	case actForgotten:
		rec := ledger.Record{State: ledger.Abandoned, Actor: s.Actor, ErrorClass: faults.NameCompensationFailed, Detail: "repair: " + p.why}
		return string(ledger.Abandoned), s.Ledger.Append(ctx, l, rec, ledger.Change{Release: true})
	}
	// The undo is compensation's own, under the repair's lease: AWSCURRENT
	// back if the rotation moved it, the target back to the AWSCURRENT
	// value (logging in with the new password if that is what works), its
	// AWSPENDING off; ROLLED_BACK journaled and the lease released.
	out, err := s.compensate(ctx, o, CloseInput{Rotation: o.rc, Mode: ModeRollback, Error: &TaskError{Error: faults.NameCompensationFailed}})
	*l = s.reread(ctx, o, *l)
	return out.State, err
}

func (s *Service) reread(ctx context.Context, o op, l ledger.Lease) ledger.Lease {
	if cur, ok, err := s.Ledger.Get(ctx, o.rc.SecretArn); err == nil && ok && cur.Fencing == l.Fencing {
		return cur
	}
	return l
}

// rollForward is finish under the repair's lease: AWSCURRENT moves to the
// token with a compare-and-swap on the recorded previous version (journaled
// first), then AWSPENDING comes off and FINISHED is journaled.
func (s *Service) rollForward(ctx context.Context, o op, l *ledger.Lease, p repairPlan) (string, error) {
	arn, token := o.rc.SecretArn, o.rc.ClientRequestToken
	d, err := s.Secrets.Describe(ctx, arn)
	if err != nil {
		return "", err
	}
	switch cur := d.VersionWith(secretstore.Current); cur {
	case token:
	case o.rc.PreviousVersionId:
		if err := o.journal(ctx, l, ledger.FinishStarted, ledger.Change{FinishMayHaveRun: true}); err != nil {
			return "", err
		}
		if err := s.Secrets.MoveStage(ctx, arn, secretstore.Current, token, cur); err != nil {
			if secretstore.IsStageMismatch(err) {
				return "", o.conflict("AWSCURRENT moved while the repair finished the rotation", err)
			}
			return "", err
		}
	default:
		return "", o.conflict("AWSCURRENT moved to version "+cur+" during the repair", nil)
	}
	if d.HasStage(token, secretstore.Pending) {
		if err := s.Secrets.RemoveStage(ctx, arn, secretstore.Pending, token); err != nil && !secretstore.IsStageMismatch(err) {
			return "", err
		}
	}
	rec := ledger.Record{State: ledger.Finished, Actor: s.Actor, Detail: "repair: rolled forward: " + p.why}
	if err := s.Ledger.Append(ctx, l, rec, ledger.Change{Release: true}); err != nil {
		if errors.Is(err, ledger.ErrFenced) {
			return "", o.conflict("lost the lease while repairing", err)
		}
		return "", err
	}
	return string(ledger.Finished), nil
}

// masterSetCurrent sets the password of the user AWSCURRENT names back to
// its value, logging in as the master (alternating users: set never changed
// that user, but something did, and only the master can set it).
func (s *Service) masterSetCurrent(ctx context.Context, o op) error {
	cur, eng, err := s.parse(ctx, o, o.rc.PreviousVersionId)
	if err != nil {
		return err
	}
	m, err := s.master(ctx, o, cur, eng)
	if err != nil {
		return err
	}
	_, err = eng.SetPassword(ctx, target.SetPasswordRequest{Username: cur.Username, New: cur.Password, Logins: []target.Credential{target.FromValue(m)}})
	if err == nil {
		err = eng.Verify(ctx, target.VerifyRequest{Credential: target.FromValue(cur)})
	}
	return o.targetErr(err, "the master secret "+cur.MasterARN+" could not set "+cur.Username+" back", o.input)
}

// repairFailed handles an attempt that took the lease over and then failed:
// the lease goes back to COMPENSATION_FAILED (held, queued, the next
// attempt a longer backoff away), unless it was lost to someone else.
func (s *Service) repairFailed(ctx context.Context, o op, rl RepairLedger, l ledger.Lease, res RepairResult, cause error) (RepairResult, error) {
	l = s.reread(ctx, o, l)
	res.Reason = cause.Error()
	if errors.Is(cause, ledger.ErrFenced) || l.Holder != o.rc.ExecutionArn || l.State.Terminal() {
		// Lost the lease, or compensation ended it (ABANDONED over someone
		// else's version): nothing more is ours to do.
		res.Outcome, res.State = RepairSkipped, string(l.State)
		if l.Holder == "" && l.Queued() {
			return s.announce(ctx, rl, l, res, false)
		}
		return res, nil
	}
	rec := ledger.Record{State: ledger.CompensationFailed, Actor: s.Actor, ErrorClass: faults.Name(faults.Classify(cause, o.rc.SecretArn, StepRepair)),
		Detail: "repair attempt did not complete; retried after the backoff"}
	if err := s.Ledger.Append(ctx, &l, rec, ledger.Change{Hold: true}); err != nil {
		if errors.Is(err, ledger.ErrFenced) {
			// Lost the lease after all (a slower attempt than its lease:
			// another run took it over): the write says so, not the reread.
			res.Outcome, res.State = RepairSkipped, ""
			if cur, ok, gerr := s.Ledger.Get(ctx, o.rc.SecretArn); gerr == nil && ok {
				res.State = string(cur.State)
			}
			return res, nil
		}
		return res, err
	}
	res.Outcome, res.State = RepairDeferred, string(l.State)
	res.NextAttempt = l.Repair.LastAtTime().Add(s.RepairPolicy.Delay(l.Repair.Attempts)).UTC().Format(time.RFC3339)
	return s.alertIfOverdue(ctx, o, l, res, repairPlan{action: actDefer, why: res.Reason})
}

// deferRepair records an attempt that changed nothing and, when a person is
// needed, says so.
func (s *Service) deferRepair(ctx context.Context, o op, rl RepairLedger, l ledger.Lease, p repairPlan, res RepairResult) (RepairResult, error) {
	n, err := rl.DeferRepair(ctx, l, p.why)
	if errors.Is(err, ledger.ErrNotRepairable) {
		res.Outcome, res.Reason = RepairSkipped, err.Error()
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.Outcome, res.State = p.outcome(), string(n.State)
	res.NextAttempt = n.Repair.LastAtTime().Add(s.RepairPolicy.Delay(n.Repair.Attempts)).UTC().Format(time.RFC3339)
	if p.action == actPerson {
		return res, s.repairNeeded(ctx, o, n, p.why, p.todo)
	}
	return s.alertIfOverdue(ctx, o, n, res, p)
}

// alertIfOverdue calls a person once the secret has waited AlertAfter.
func (s *Service) alertIfOverdue(ctx context.Context, o op, l ledger.Lease, res RepairResult, p repairPlan) (RepairResult, error) {
	policy := s.RepairPolicy.orDefaults()
	since := l.Repair.SinceTime()
	if s.now().Sub(since) < policy.AlertAfter {
		return res, nil
	}
	res.Outcome = RepairNeedsPerson
	todo := p.todo
	if todo == "" {
		todo = fmt.Sprintf("The repair has not been able to reach the target or Secrets Manager since %s (%d attempts; retried every %s): check that the database is up and reachable from the functions (network, security groups). Nothing else is needed: the next attempt after it answers repairs the secret.",
			since.UTC().Format(time.RFC3339), l.Repair.Attempts, policy.MaxBackoff)
	}
	return res, s.repairNeeded(ctx, o, l, p.why, todo)
}

func (s *Service) repairNeeded(ctx context.Context, o op, l ledger.Lease, why, todo string) error {
	err := s.Events.Publish(ctx, events.Event{DetailType: events.RepairNeeded, Detail: events.Detail{
		SecretARN: o.rc.SecretArn, VersionID: l.Token, PreviousVersionID: l.PreviousVersion, ExecutionARN: l.Holder,
		Fencing: l.Fencing, ErrorClass: faults.NameCompensationFailed, Severity: "critical",
		DurationMs: s.now().Sub(l.Repair.SinceTime()).Milliseconds(), Action: todo, Outcome: why, RepairAttempts: l.Repair.Attempts,
	}})
	if err != nil {
		return &faults.RetryableError{Detail: o.detail("the \""+events.RepairNeeded+"\" event was not published; the next run publishes it", err)}
	}
	return nil
}

// announce publishes the outcome of a journaled repair and then takes the
// lease out of the queue; a failed PutEvents leaves it queued, so the next
// run publishes again (at least once, like the saga's outcome events). A
// secret forgotten for good (deleted without recovery) calls a person.
func (s *Service) announce(ctx context.Context, rl RepairLedger, l ledger.Lease, res RepairResult, forgotten bool) (RepairResult, error) {
	o := s.op(StepRepair, Context{SecretId: l.Secret, SecretArn: l.Secret, ClientRequestToken: l.Token, Fencing: l.Fencing})
	if res.Outcome == "" {
		res.Outcome = RepairAnnounced
	}
	res.State = string(l.State)
	detailType, severity, action := events.RotationRepaired, "info", ""
	if l.State == ledger.Abandoned && !forgotten {
		// A run that journaled it and failed to announce it: ask again.
		_, err := s.Secrets.Describe(ctx, l.Secret)
		forgotten = isGone(err)
	}
	if forgotten {
		detailType, severity, action = events.RepairNeeded, "critical", forceDeletedAction
		res.Outcome = RepairNeedsPerson
	}
	failed := ""
	if t := l.TakenOver; t != nil {
		failed = t.Execution
	}
	err := s.Events.Publish(ctx, events.Event{DetailType: detailType, Detail: events.Detail{
		SecretARN: l.Secret, VersionID: l.Token, PreviousVersionID: l.PreviousVersion, ExecutionARN: failed,
		Fencing: l.Fencing, Severity: severity, DurationMs: s.now().Sub(l.Repair.SinceTime()).Milliseconds(),
		Action: action, Outcome: fmt.Sprintf("%s; the ledger says %s", res.Outcome, l.State), RepairAttempts: l.Repair.Attempts,
	}})
	if err != nil {
		return res, &faults.RetryableError{Detail: o.detail("the repair is journaled but its \""+detailType+"\" event was not published; the next run publishes it", err)}
	}
	if err := rl.ClearRepair(ctx, l); err != nil && !errors.Is(err, ledger.ErrNotRepairable) {
		return res, err
	}
	return res, nil
}

// isGone reports whether Secrets Manager says the secret does not exist.
func isGone(err error) bool {
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

// forceDeletedAction is the one case with no value anywhere to go back to.
const forceDeletedAction = "The secret was deleted without a recovery window (ForceDeleteWithoutRecovery) during a rotation, so the password the database user had may exist nowhere: a person must set the user's password on the database (as an administrator) and store it in a new secret. Nothing can be restored."

// deletedAction is what to do about a secret scheduled for deletion
// mid-rotation: Secrets Manager refuses to read or relabel it, so neither
// the undo nor the repair can finish until it is restored.
func deletedAction(arn string) string {
	return "The secret was scheduled for deletion during a rotation, and Secrets Manager refuses to read or change it until it is restored: run `aws secretsmanager restore-secret --secret-id " + arn + "`. The repair function then finishes the undo on its next run (no other step is needed); rotate again afterwards if you wish. If the secret is meant to go, restore it anyway, let the repair finish, then delete it again."
}
