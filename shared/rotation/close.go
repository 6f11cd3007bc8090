package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

// closing finds the lease for a terminal step. finished is true when this
// rotation already ended (a retried release or compensation): its terminal
// state is returned and nothing more must be done.
func (o op) closing(ctx context.Context) (l ledger.Lease, finished bool, err error) {
	l, ok, err := o.s.Ledger.Get(ctx, o.rc.SecretArn)
	if err != nil {
		return l, false, err
	}
	if ok && o.endedHere(l) {
		return l, true, nil
	}
	if !ok || l.Fencing != o.rc.Fencing || l.Holder != o.rc.ExecutionArn {
		return l, false, o.conflict("this execution no longer holds the lease; another execution owns the secret and nothing of its work is touched", ledger.ErrFenced)
	}
	return l, false, nil
}

// endedHere reports whether l is this execution's lease (its fencing token
// and version) in a terminal state: the rotation already ended, and a
// retried terminal step must change nothing.
func (o op) endedHere(l ledger.Lease) bool {
	return l.Fencing == o.rc.Fencing && l.Token == o.rc.ClientRequestToken && l.State.Terminal()
}

// finishedHere reports whether l is this execution's lease, ended FINISHED.
func (o op) finishedHere(l ledger.Lease) bool {
	return o.endedHere(l) && l.State == ledger.Finished
}

// closingFinished is closing for release with outcome FINISHED: the lease
// the previous step (finish or verify) left, without a read, when there is
// one. Release's write is conditioned on it; if it was stale, Release
// decides again with closing.
func (o op) closingFinished(ctx context.Context) (ledger.Lease, bool, error) {
	if last := o.rc.Last; last != nil && last.Released && last.Lease != nil {
		// Finish ended the rotation itself (ReleaseAtFinish): the lease
		// it left is FINISHED and free; release only announces it.
		if l := *last.Lease; l.Secret == o.rc.SecretArn && o.finishedHere(l) {
			return l, true, nil
		}
	}
	if l, ok := o.known(follows[StepRelease]...); ok {
		return l, false, nil
	}
	return o.closing(ctx)
}

func (s *Service) publish(ctx context.Context, o op, l ledger.Lease, detailType, severity, errClass, compClass, action string) error {
	err := s.Events.Publish(ctx, events.Event{DetailType: detailType, Detail: events.Detail{
		SecretARN: o.rc.SecretArn, VersionID: o.rc.ClientRequestToken, PreviousVersionID: o.rc.PreviousVersionId,
		ExecutionARN: o.rc.ExecutionArn, Fencing: o.rc.Fencing, ErrorClass: errClass, CompensationError: compClass,
		Severity: severity, DurationMs: s.now().Sub(time.UnixMilli(l.StartedAt)).Milliseconds(), Action: action,
	}})
	if err != nil {
		s.log().Error("event not published", "secret", o.rc.SecretArn, "detailType", detailType, "error", err.Error())
	}
	return err
}

// outcome publishes the event of an outcome the journal already records.
// Like Compensation Failed, it is not fire-and-forget: a failed PutEvents
// is a RetryableError, so the state machine retries the step, which finds
// the outcome journaled and publishes again without journaling twice.
// (EventBridge delivers at least once anyway: a consumer already has to
// tolerate a repeated event.)
func (s *Service) outcome(ctx context.Context, o op, l ledger.Lease, detailType, severity, errClass, action string) error {
	if o.quiet {
		return nil // the repair announces its own outcome (Rotation Repaired)
	}
	if err := s.publish(ctx, o, l, detailType, severity, errClass, "", action); err != nil {
		return &faults.RetryableError{Detail: o.detail("the outcome is journaled but its \""+detailType+"\" event was not published; a retry publishes it", err)}
	}
	return nil
}

// succeeded is the event of a FINISHED rotation.
func (o op) succeeded() string {
	if o.rc.Rollback {
		return events.RollbackCompleted
	}
	return events.RotationSucceeded
}

const abandonedAction = "Another actor changed AWSCURRENT during the rotation; check that it authenticates against the target."

func errClass(e *TaskError) string {
	if e == nil {
		return ""
	}
	return e.Error
}

// Release ends a rotation. Outcome FINISHED journals it and frees the lease.
// Outcome COMPENSATION_FAILED journals that, keeps the lease (no rotation may
// start on top of an unknown state) and raises the critical alert.
func (s *Service) Release(ctx context.Context, in CloseInput) (CloseOutput, error) {
	o := s.op(StepRelease, in.Rotation)
	out, err := s.release(ctx, o, in)
	if _, known := o.known(follows[StepRelease]...); known && errors.Is(err, ledger.ErrFenced) {
		// The lease the previous step left was stale: this release ran
		// before and its answer was lost (the lease is free now), or
		// another execution took over. Decide again from the lease as it
		// is, as without one.
		o.rc.Last = nil
		out, err = s.release(ctx, o, in)
	}
	return out, o.done(err, err == nil)
}

func (s *Service) release(ctx context.Context, o op, in CloseInput) (CloseOutput, error) {
	out := CloseOutput{SecretArn: o.rc.SecretArn, VersionId: o.rc.ClientRequestToken}
	switch in.Outcome {
	case OutcomeFinished:
		l, finished, err := o.closingFinished(ctx)
		if err != nil {
			return out, err
		}
		out.State, out.AWSCURRENT = string(ledger.Finished), o.rc.ClientRequestToken
		if finished {
			if l.State != ledger.Finished {
				return out, o.conflict("this rotation already ended as "+string(l.State), nil)
			}
			// A retry: the event may be what failed the first time.
			return out, s.outcome(ctx, o, l, o.succeeded(), "info", "", "")
		}
		if !l.FinishMayHaveRun {
			return out, o.input("release with outcome FINISHED before finish ran", nil)
		}
		if err := s.Ledger.Append(ctx, &l, o.finishedRecord(), ledger.Change{Release: true}); err != nil {
			return out, err
		}
		return out, s.outcome(ctx, o, l, o.succeeded(), "info", "", "")
	case OutcomeCompensationFailed:
		out.State = string(ledger.CompensationFailed)
		action := s.compensationFailedAction(ctx, o.rc.SecretArn)
		l, finished, err := o.closing(ctx)
		switch {
		case err == nil && !finished:
			rec := ledger.Record{State: ledger.CompensationFailed, Actor: s.Actor, ErrorClass: errClass(in.Error), Detail: "compensation error: " + errClass(in.CompensationError)}
			if err := s.Ledger.Append(ctx, &l, rec, ledger.Change{Hold: true}); err != nil {
				return out, err
			}
		case err != nil && faults.Name(err) != faults.NameConflict:
			return out, err
		}
		// Alert even when the lease is no longer ours: a person must look.
		return out, s.publish(ctx, o, l, events.CompensationFailed, "critical", errClass(in.Error), errClass(in.CompensationError), action)
	}
	return out, o.input("Outcome must be FINISHED or COMPENSATION_FAILED", nil)
}

// Compensate undoes this execution's own work in reverse order, each part
// idempotent: AWSCURRENT back to the recorded previous version (with
// AWSPREVIOUS restored) if this execution moved it; the target's credential
// back to the AWSCURRENT value if set may have run; AWSPENDING off the token;
// then ROLLED_BACK is journaled and the lease freed. It never undoes anyone
// else's work: if AWSCURRENT is on a version this execution did not create,
// it journals ABANDONED and returns ConflictError.
//
// Mode "abandon" (the state machine's path for ConflictError) removes only
// this execution's AWSPENDING and journals ABANDONED.
func (s *Service) Compensate(ctx context.Context, in CloseInput) (CloseOutput, error) {
	step := StepCompensate
	if in.Mode == ModeAbandon {
		step = StepAbandon
	}
	o := s.op(step, in.Rotation)
	out, err := s.compensate(ctx, o, in)
	// Classify first: a throttled or failed AWS call arrives here as the
	// SDK's raw error, and only its classification tells a transient failure
	// (retried by the state machine, like every step's) from one no retry
	// can fix.
	err = faults.Classify(err, o.detail("", nil).SecretID, o.step)
	if err != nil && faults.Name(err) != faults.NameRetryable && faults.Name(err) != faults.NameConflict {
		// A conflict means stop. Anything else means the undo cannot complete.
		err = &faults.CompensationFailedError{Detail: o.detail("the undo did not complete", err)}
	}
	return out, o.done(err, err == nil)
}

func (s *Service) compensate(ctx context.Context, o op, in CloseInput) (CloseOutput, error) {
	out := CloseOutput{SecretArn: o.rc.SecretArn, VersionId: o.rc.ClientRequestToken}
	l, finished, err := o.closing(ctx)
	if err != nil && in.Mode == ModeAbandon && faults.Name(err) == faults.NameConflict {
		// A newer execution owns the secret: abandoning means touching nothing.
		out.State = "NOT_OWNER"
		return out, nil
	}
	if err != nil {
		return out, err
	}
	if finished {
		// A retry. The outcome's event may be what failed the first time:
		// publish it again; an abandoned rollback stays a conflict.
		out.State = string(l.State)
		switch {
		case l.State == ledger.RolledBack && in.Mode == ModeRollback:
			out.AWSCURRENT = o.rc.PreviousVersionId
			return out, s.outcome(ctx, o, l, events.RotationRolledBack, "warning", errClass(in.Error), "")
		case l.State == ledger.Abandoned:
			if err := s.outcome(ctx, o, l, events.RotationAbandoned, "critical", errClass(in.Error), abandonedAction); err != nil {
				return out, err
			}
			if in.Mode == ModeRollback {
				return out, o.conflict("this rotation was abandoned: AWSCURRENT moved to a version it did not put there", nil)
			}
		}
		return out, nil
	}
	if in.Mode == ModeAbandon {
		return out, s.abandon(ctx, o, &l, in, &out)
	}
	if in.Mode == ModeRecover {
		return out, s.recoverDead(ctx, o, &l, &out)
	}
	if in.Mode != ModeRollback {
		return out, o.input("Mode must be rollback, abandon or recover", nil)
	}
	if l.State != ledger.CompensateStarted {
		rec := ledger.Record{State: ledger.CompensateStarted, Actor: s.Actor, ErrorClass: errClass(in.Error)}
		if done := o.setsRecord(l); done != nil {
			// The test failed, so set's SET_DONE was never journaled:
			// journal it first, in the same write.
			if err := s.Ledger.Append(ctx, &l, *done, ledger.Change{Then: &rec}); err != nil {
				return out, err
			}
		} else if err := s.Ledger.Append(ctx, &l, rec, ledger.Change{}); err != nil {
			return out, err
		}
	}
	arn, token, prev := o.rc.SecretArn, o.rc.ClientRequestToken, o.rc.PreviousVersionId

	// 1. AWSCURRENT back, if this execution moved it.
	d, err := s.Secrets.Describe(ctx, arn)
	if err != nil {
		return out, err
	}
	if d.Deleted {
		return out, s.deletedMidRotation(ctx, o, l, &out)
	}
	switch cur := d.VersionWith(secretstore.Current); {
	case cur == token && l.FinishMayHaveRun:
		err := s.Secrets.MoveStage(ctx, arn, secretstore.Current, prev, token)
		if secretstore.IsStageMismatch(err) {
			return out, s.abandonOver(ctx, o, &l, in, &out, "AWSCURRENT moved during compensation")
		}
		if err != nil {
			return out, err
		}
		if d, err = s.Secrets.Describe(ctx, arn); err != nil {
			return out, err
		}
	case cur == prev:
	default:
		return out, s.abandonOver(ctx, o, &l, in, &out, "AWSCURRENT is on version "+cur+", which this execution did not put there")
	}

	// 2. The target's credential back to the AWSCURRENT value.
	if l.SetMayHaveRun {
		reverted, err := s.revertTarget(ctx, o)
		if err != nil {
			return out, err
		}
		out.TargetReverted = reverted
	}

	// 3. AWSPREVIOUS where it was at start. Secrets Manager moved it onto
	// the token when AWSCURRENT came back; it stays there until the target
	// is back, so that an application that finds AWSCURRENT refused meanwhile
	// (the target still has the token's password) finds the password that
	// works under a label (AWSPREVIOUS), as the client library tries it.
	if d.VersionWith(secretstore.Previous) == token {
		if pp := o.rc.PreviousPreviousVersionId; pp != "" {
			err = s.Secrets.MoveStage(ctx, arn, secretstore.Previous, pp, token)
		} else {
			err = s.Secrets.RemoveStage(ctx, arn, secretstore.Previous, token)
		}
		if err != nil {
			return out, err
		}
	}

	// 4. AWSPENDING off the token (filled by create, or still the empty
	// version native rotation's RotateSecret made: unlabelled, it is left
	// for Secrets Manager to delete, as after a failed rotation of its own),
	// and off AWSCURRENT where a rotation function that leaves it behind
	// put it and create never moved it: the rotation ends with no AWSPENDING.
	if err := s.removeOwnPending(ctx, o, d); err != nil {
		return out, err
	}
	if err := s.removeStalePending(ctx, o, d); err != nil {
		return out, err
	}

	// 5. Journal, free the lease, announce.
	rec := ledger.Record{State: ledger.RolledBack, Actor: s.Actor, ErrorClass: errClass(in.Error), PreviousVersion: prev}
	if err := s.Ledger.Append(ctx, &l, rec, ledger.Change{Release: true}); err != nil {
		return out, err
	}
	out.State, out.AWSCURRENT = string(ledger.RolledBack), prev
	return out, s.outcome(ctx, o, l, events.RotationRolledBack, "warning", errClass(in.Error), "")
}

// recoverDead cleans up after a rotation whose execution died (Context.
// Recover): if it had moved AWSCURRENT to its version, that rotation had
// committed and is kept; if AWSCURRENT is still what it started from, its
// work is undone (the target's credential back to AWSCURRENT if its set may
// have run, its AWSPENDING removed); if someone else moved AWSCURRENT,
// only its AWSPENDING goes. Then RECOVERED is journaled under this
// rotation's lease. Each part is idempotent.
func (s *Service) recoverDead(ctx context.Context, o op, l *ledger.Lease, out *CloseOutput) error {
	r := o.rc.Recover
	out.State = string(l.State)
	if r == nil {
		return nil
	}
	if p, ok := progress[l.State]; ok && p >= progress[ledger.Recovered] {
		return nil // done before (a retried call)
	}
	d, err := s.Secrets.Describe(ctx, o.rc.SecretArn)
	if err != nil {
		return err
	}
	dead := o
	dead.rc.ClientRequestToken, dead.rc.PreviousPreviousVersionId = r.Token, r.PreviousPreviousVersionId
	var what string
	switch cur := d.VersionWith(secretstore.Current); {
	case cur == r.Token && r.State == string(ledger.CompensateStarted):
		// It had committed and then began undoing itself (a failed bake,
		// say): whether its version may stay is not for us to guess.
		return &faults.CompensationFailedError{Detail: o.detail(fmt.Sprintf(
			"rotation #%d (version %s) died while undoing itself after it had moved AWSCURRENT; an operator must choose between its version and %s (see secretctl status)",
			r.Fencing, r.Token, r.PreviousVersionId), nil)}
	case cur == r.Token:
		what = "it had moved AWSCURRENT to its version, so it had committed: kept"
	case cur == r.PreviousVersionId:
		what = "undone"
		if _, labelled := d.Versions[r.Token]; r.SetMayHaveRun && labelled {
			dead.rc.PreviousVersionId = cur
			reverted, err := s.revertTarget(ctx, dead)
			if err != nil {
				return err
			}
			if reverted {
				what += ", the target's credential set back to AWSCURRENT"
			}
		}
	default:
		what = "AWSCURRENT had been moved by someone else since; only its AWSPENDING removed"
	}
	if err := s.removeOwnPending(ctx, dead, d); err != nil {
		return err
	}
	rec := ledger.Record{State: ledger.Recovered, Actor: s.Actor,
		Detail: fmt.Sprintf("rotation #%d (execution %s, version %s) died in %s: %s", r.Fencing, r.Execution, r.Token, r.State, what)}
	if err := s.Ledger.Append(ctx, l, rec, ledger.Change{}); err != nil {
		if errors.Is(err, ledger.ErrFenced) {
			return o.conflict("lost the lease while recovering", err)
		}
		return err
	}
	out.State = string(ledger.Recovered)
	s.log().Info("recovered a dead rotation", "secret", o.rc.SecretArn, "deadFencing", r.Fencing, "deadVersion", r.Token, "outcome", what)
	return nil
}

// revertTarget sets the target's credential back to the AWSCURRENT value
// and checks that it logs in. With alternating users, set changed only the
// other user: the one AWSCURRENT names was never touched, so there is
// nothing to revert (and reverting could only risk breaking it).
func (s *Service) revertTarget(ctx context.Context, o op) (bool, error) {
	v, err := s.load(ctx, o)
	if err != nil {
		return false, err
	}
	if v.master != nil {
		return false, nil
	}
	_, err = v.engine.SetPassword(ctx, v.change(v.current, v.pending))
	if err == nil {
		err = v.engine.Verify(ctx, target.VerifyRequest{Credential: target.FromValue(v.current)})
	}
	if errors.Is(err, target.ErrUnreachable) {
		return false, &faults.RetryableError{Detail: o.detail("the target is unreachable while reverting", err)}
	}
	if err != nil {
		return false, &faults.CompensationFailedError{Detail: o.detail("could not set the target's credential back to AWSCURRENT", err)}
	}
	return true, nil
}

func (s *Service) removeOwnPending(ctx context.Context, o op, d secretstore.Description) error {
	if !d.HasStage(o.rc.ClientRequestToken, secretstore.Pending) {
		return nil
	}
	err := s.Secrets.RemoveStage(ctx, o.rc.SecretArn, secretstore.Pending, o.rc.ClientRequestToken)
	if secretstore.IsStageMismatch(err) {
		return nil // already gone
	}
	return err
}

// removeStalePending takes AWSPENDING off the AWSCURRENT version when that
// is the version this rotation started from: the label a previous rotation
// function left behind (Secrets Manager's own templates do), which means
// nothing to Secrets Manager ("When rotation is successful, the AWSPENDING
// staging label might be attached to the same version as the AWSCURRENT
// version", RotateSecret) and which create would have moved to the token.
// The removal names its holder, so a label someone moved meanwhile stays.
func (s *Service) removeStalePending(ctx context.Context, o op, d secretstore.Description) error {
	prev := o.rc.PreviousVersionId
	if prev == "" || !d.HasStage(prev, secretstore.Pending) || !d.HasStage(prev, secretstore.Current) {
		return nil
	}
	err := s.Secrets.RemoveStage(ctx, o.rc.SecretArn, secretstore.Pending, prev)
	if secretstore.IsStageMismatch(err) {
		return nil
	}
	return err
}

// abandon removes this execution's own AWSPENDING and journals ABANDONED.
func (s *Service) abandon(ctx context.Context, o op, l *ledger.Lease, in CloseInput, out *CloseOutput) error {
	d, err := s.Secrets.Describe(ctx, o.rc.SecretArn)
	if err != nil {
		return err
	}
	if err := s.removeOwnPending(ctx, o, d); err != nil {
		return err
	}
	rec := ledger.Record{State: ledger.Abandoned, Actor: s.Actor, ErrorClass: errClass(in.Error), Detail: "AWSCURRENT is " + d.VersionWith(secretstore.Current)}
	if err := s.Ledger.Append(ctx, l, rec, ledger.Change{Release: true}); err != nil {
		return err
	}
	out.State, out.AWSCURRENT = string(ledger.Abandoned), d.VersionWith(secretstore.Current)
	return s.outcome(ctx, o, *l, events.RotationAbandoned, "critical", errClass(in.Error), abandonedAction)
}

// abandonOver stops compensation that would undo someone else's work.
func (s *Service) abandonOver(ctx context.Context, o op, l *ledger.Lease, in CloseInput, out *CloseOutput, why string) error {
	if err := s.abandon(ctx, o, l, in, out); err != nil {
		return err
	}
	return o.conflict(why+"; compensation stopped and journaled ABANDONED", nil)
}

// compensationFailedAction is what the Compensation Failed alert asks of
// people: usually nothing (the repair function heals the secret once the
// failing dependency answers), except for a deleted secret.
func (s *Service) compensationFailedAction(ctx context.Context, arn string) string {
	d, err := s.Secrets.Describe(ctx, arn)
	switch {
	case isGone(err):
		return forceDeletedAction
	case err == nil && d.Deleted:
		return deletedAction(arn)
	}
	return "Rotation of this secret is blocked until the undo completes. The repair function retries it with backoff and decides from what logs in then; it sends \"" +
		events.RepairNeeded + "\" if a person must act. To look now: `secretctl status " + arn + "`."
}

// deletedMidRotation ends compensation of a secret scheduled for deletion
// (DeleteSecret with a recovery window) during the rotation. Secrets
// Manager refuses GetSecretValue and UpdateSecretVersionStage on it ("If a
// secret is scheduled for deletion, then its details, including the
// encrypted secret information, is not accessible", DescribeSecret's
// DeletedDate), so the undo stops here: the target is set back if the
// AWSCURRENT value can still be read, and the rotation ends in
// COMPENSATION_FAILED (lease kept) with an alert that says to restore the
// secret; the repair function finishes the undo after RestoreSecret.
func (s *Service) deletedMidRotation(ctx context.Context, o op, l ledger.Lease, out *CloseOutput) error {
	if l.SetMayHaveRun {
		if reverted, err := s.revertTarget(ctx, o); err == nil {
			out.TargetReverted = reverted
		}
	}
	return &faults.CompensationFailedError{Detail: o.detail("the secret was scheduled for deletion during the rotation, and Secrets Manager refuses to read or relabel it: restore it (RestoreSecret); the repair function then finishes the undo", nil)}
}
