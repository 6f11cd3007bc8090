package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/smithy-go"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

// progress orders the forward states, so a re-run step can tell whether its
// record is already in the journal.
var progress = map[ledger.State]int{
	ledger.Started: 10, ledger.Recovered: 15, ledger.Created: 20, ledger.SetStarted: 30, ledger.SetDone: 40,
	ledger.Tested: 50, ledger.FinishStarted: 60, ledger.FinishDone: 70, ledger.Verified: 80,
}

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

// op carries one step's identity into its errors and log lines.
type op struct {
	s    *Service
	step string
	rc   Context
	// quiet: the outcome events of compensation are left to the caller
	// (the repair publishes Rotation Repaired instead).
	quiet bool
	// seen is the lease as this step last read or wrote it, handed to the
	// next step (StepOutput.Lease).
	seen *ledger.Lease
}

func (s *Service) op(step string, rc Context) op {
	return op{s: s, step: step, rc: rc, seen: new(ledger.Lease)}
}

// output is a forward step's result: what it did and the lease as it left
// it (none if it never got that far).
func (o op) output(changed bool) StepOutput {
	out := StepOutput{Step: o.step, Changed: changed}
	if o.seen != nil && o.seen.Secret != "" {
		l := *o.seen
		out.Lease = &l
		out.Released = o.step == StepFinish && l.State == ledger.Finished
	}
	return out
}

// known is the lease the previous step left (Context.Last) if it is this
// rotation's (same secret, fencing token, holder and token) and in one of
// the states the step follows: a step decides from the lease's state (finish
// refuses an untested password, for one), so a lease in any other state is
// not taken on trust but read.
func (o op) known(after ...ledger.State) (ledger.Lease, bool) {
	if o.rc.Last == nil || o.rc.Last.Lease == nil {
		return ledger.Lease{}, false
	}
	l := *o.rc.Last.Lease
	ok := l.Secret == o.rc.SecretArn && l.Fencing == o.rc.Fencing && l.Holder == o.rc.ExecutionArn && l.Token == o.rc.ClientRequestToken
	return l, ok && slices.Contains(after, l.State)
}

// follows are the journal states each forward step runs after in a
// rotation that goes as planned: the lease the previous step left in one of
// them is used without a read.
var follows = map[string][]ledger.State{
	StepCreate: {ledger.Started, ledger.Recovered},
	StepSet:    {ledger.Created},
	StepTest:   {ledger.SetStarted, ledger.SetDone},
	StepFinish: {ledger.Tested},
	StepVerify: {ledger.FinishDone},
	// release with outcome FINISHED (closingFinished)
	StepRelease: {ledger.FinishDone, ledger.Verified},
}

func (o op) detail(reason string, err error) faults.Detail {
	id := o.rc.SecretArn
	if id == "" {
		id = o.rc.SecretId
	}
	return faults.Detail{SecretID: id, Step: o.step, Reason: reason, Err: err}
}

func (o op) input(reason string, err error) error {
	return &faults.InputError{Detail: o.detail(reason, err)}
}
func (o op) conflict(reason string, err error) error {
	return &faults.ConflictError{Detail: o.detail(reason, err)}
}
func (o op) testFailed(reason string, err error) error {
	return &faults.TestFailedError{Detail: o.detail(reason, err)}
}

// done is every step's exit: classify, log (never a value), return.
func (o op) done(err error, changed bool) error {
	err = faults.Classify(err, o.detail("", nil).SecretID, o.step)
	attrs := []any{"secret", o.detail("", nil).SecretID, "step", o.step, "token", o.rc.ClientRequestToken, "fencing", o.rc.Fencing}
	if err != nil {
		o.s.log().Warn("step failed", append(attrs, "errorType", faults.Name(err), "error", err.Error())...)
	} else {
		o.s.log().Info("step done", append(attrs, "changed", changed)...)
	}
	return err
}

// lease is the secret's lease for this step: the one the previous step left
// (no read: the step's first journal write, which precedes anything it
// changes, is conditioned on it and reads the lease only if it moved), or,
// without one, read and confirmed to be still rc's execution's.
func (o op) lease(ctx context.Context) (ledger.Lease, error) {
	if l, ok := o.known(follows[o.step]...); ok {
		*o.seen = l
		return l, nil
	}
	l, ok, err := o.s.Ledger.Get(ctx, o.rc.SecretArn)
	if err != nil {
		return ledger.Lease{}, err
	}
	if !ok || l.Fencing != o.rc.Fencing || l.Holder != o.rc.ExecutionArn || l.Token != o.rc.ClientRequestToken {
		return ledger.Lease{}, o.conflict("this execution no longer holds the lease (fencing token superseded); it must not change anything", ledger.ErrFenced)
	}
	*o.seen = l
	return l, nil
}

// journal appends state unless the journal already went past it, by l or,
// when l was stale (the write lost its condition), by the lease as it is.
func (o op) journal(ctx context.Context, l *ledger.Lease, state ledger.State, ch ledger.Change) error {
	return o.journalRecord(ctx, l, ledger.Record{State: state, Actor: o.s.Actor}, ch)
}

// journalRecord is journal with the record given whole (its time and actor
// may be another step's: set's SET_DONE).
func (o op) journalRecord(ctx context.Context, l *ledger.Lease, rec ledger.Record, ch ledger.Change) error {
	state := rec.State
	past := func(cur ledger.Lease) bool {
		p, ok := progress[cur.State]
		return ok && p >= progress[state]
	}
	if past(*l) {
		return nil
	}
	ch.Still = func(cur ledger.Lease) bool { return !past(cur) }
	err := o.s.Ledger.Append(ctx, l, rec, ch)
	if errors.Is(err, ledger.ErrFenced) {
		return o.conflict("lost the lease while journaling "+string(state), err)
	}
	if err == nil && o.seen != nil {
		*o.seen = *l
	}
	return err
}

func (o op) checkTable() error {
	if o.rc.LedgerTable != "" && o.rc.LedgerTable != o.s.Ledger.Table() {
		return o.input(fmt.Sprintf("the state machine names ledger table %q but this function uses %q; deploy both from the same stack", o.rc.LedgerTable, o.s.Ledger.Table()), nil)
	}
	return nil
}

// Acquire validates the secret, then takes its lease and records the versions
// it will compare against. Bad input is refused before the lease is taken, so
// it changes nothing.
func (s *Service) Acquire(ctx context.Context, in AcquireInput) (Context, error) {
	rc := Context{SecretId: in.SecretId, ClientRequestToken: in.ClientRequestToken, ExecutionArn: in.ExecutionArn, LedgerTable: in.LedgerTable}
	o := s.op(StepAcquire, rc)
	out, err := s.acquire(ctx, o, in)
	if err == nil {
		o.rc = out
	} else {
		s.dropRefusedVersion(ctx, o, in, faults.Classify(err, in.SecretId, StepAcquire))
	}
	return out, o.done(err, err == nil)
}

// dropRefusedVersion takes AWSPENDING off the empty version Secrets
// Manager's RotateSecret created for this token when acquire refuses the
// rotation (the lease is held, the secret is malformed, ...). Nothing will
// ever fill that version, and while it carries AWSPENDING every later
// RotateSecret refuses: "If the AWSPENDING staging label is present but not
// attached to the same version as AWSCURRENT, then any later invocation of
// RotateSecret assumes that a previous rotation request is still in
// progress and returns an error." Only a refusal the state machine does not
// retry counts (a retried acquire needs the version as it was), and only
// the version RotateSecret made: empty, AWSPENDING its only label, no lease
// ever naming the token. The removal names the version (RemoveFromVersionId),
// so a label that moved meanwhile stays where it is. Failing here changes
// nothing the refusal reports; it is logged with the command that clears it.
func (s *Service) dropRefusedVersion(ctx context.Context, o op, in AcquireInput, err error) {
	if n := faults.Name(err); in.Rollback || in.SecretId == "" || (n != faults.NameConflict && n != faults.NameInput) {
		return
	}
	token := in.ClientRequestToken
	d, derr := s.Secrets.Describe(ctx, in.SecretId)
	if derr != nil {
		return
	}
	if st := d.Versions[token]; len(st) != 1 || st[0] != secretstore.Pending {
		return
	}
	if l, leased, lerr := s.Ledger.Get(ctx, d.ARN); lerr != nil || (leased && l.Token == token) {
		return
	}
	if filled, ferr := s.Secrets.Filled(ctx, d.ARN, token); ferr != nil || filled {
		return
	}
	rerr := s.Secrets.RemoveStage(ctx, d.ARN, secretstore.Pending, token)
	switch {
	case rerr == nil:
		o.s.log().Info("removed AWSPENDING from the empty version RotateSecret created for the refused rotation", "secret", d.ARN, "step", o.step, "token", token)
	case !secretstore.IsStageMismatch(rerr):
		o.s.log().Warn("could not remove AWSPENDING from the empty version RotateSecret created for the refused rotation; the next RotateSecret refuses until it is removed",
			"secret", d.ARN, "step", o.step, "token", token, "error", rerr.Error(),
			"remedy", fmt.Sprintf("aws secretsmanager update-secret-version-stage --secret-id %s --version-stage AWSPENDING --remove-from-version-id %s", d.ARN, token))
	}
}

func (s *Service) acquire(ctx context.Context, o op, in AcquireInput) (Context, error) {
	switch {
	case in.SecretId == "":
		return Context{}, o.input("SecretId is empty; pass the secret's name or ARN", nil)
	case len(in.ClientRequestToken) < 32 || len(in.ClientRequestToken) > 64:
		return Context{}, o.input("ClientRequestToken must be 32 to 64 characters (a UUID); omit it to have one made", nil)
	case in.ExecutionArn == "":
		return Context{}, o.input("ExecutionArn is empty; the state machine passes $$.Execution.Id", nil)
	}
	if err := o.checkTable(); err != nil {
		return Context{}, err
	}
	d, err := s.Secrets.Describe(ctx, in.SecretId)
	if err != nil {
		return Context{}, err
	}
	o.rc.SecretArn = d.ARN
	if d.Deleted {
		return Context{}, o.input("the secret is scheduled for deletion; restore it (RestoreSecret) before rotating", nil)
	}
	current := d.VersionWith(secretstore.Current)
	if current == "" {
		return Context{}, o.input("the secret has no AWSCURRENT version; store the working credential first", nil)
	}
	// A held lease is the root cause of most other oddities (a leftover
	// AWSPENDING, say), so it is reported first.
	l, leased, err := s.Ledger.Get(ctx, d.ARN)
	if err != nil {
		return Context{}, err
	}
	var known ledger.Lease // what Acquire's compare-and-swap starts from
	if leased {
		known = l
	}
	if leased && l.Held(s.now()) && (l.Holder != in.ExecutionArn || l.Token != in.ClientRequestToken) {
		return Context{}, o.conflict("another rotation holds the lease", &ledger.HeldError{Holder: l.Holder, State: l.State, Until: l.UntilTime()})
	}
	// A re-run of this very acquire (a retried Lambda) finds its own lease;
	// the versions may have moved on since, by this execution's own steps.
	rerun := leased && l.Holder == in.ExecutionArn && l.Token == in.ClientRequestToken
	if !rerun {
		if err := s.checkToken(ctx, o, in, d, current); err != nil {
			return Context{}, err
		}
	}
	if err := checkBake(o, in); err != nil {
		return Context{}, err
	}
	// An expired lease that never reached a final state is an execution that
	// died (aborted, timed out, its Lambda retries exhausted): this rotation
	// takes the lease over and, before anything else, cleans up after it
	// (the state machine's RecoverDeadRotation step), so a dead rotation
	// never blocks the ones after it. Its AWSPENDING is expected, then.
	deadToken := ""
	switch {
	case rerun && l.TakenOver != nil:
		deadToken = l.TakenOver.Token
	case leased && !rerun && l.Unfinished() && !l.Held(s.now()):
		deadToken = l.Token
	}
	// AWSPENDING on the AWSCURRENT version is what a rotation function that
	// leaves the label behind (AWS's own templates do) ends with; Secrets
	// Manager reads it as "no rotation in progress" ("When rotation is
	// successful, the AWSPENDING staging label might be attached to the same
	// version as the AWSCURRENT version", RotateSecret), and so does the saga:
	// create moves the label to the token, compensation takes it off.
	if p := d.VersionWith(secretstore.Pending); p != "" && p != in.ClientRequestToken && p != deadToken && p != current {
		return Context{}, o.conflict(fmt.Sprintf("AWSPENDING is on version %s, left by another rotation that did not complete; if none is running, remove it with `aws secretsmanager update-secret-version-stage --secret-id %s --version-stage AWSPENDING --remove-from-version-id %s`", p, d.ARN, p), nil)
	}
	policy, err := secretstore.PolicyFromTags(d.Tags)
	if err != nil {
		return Context{}, o.input(err.Error(), nil)
	}
	// Parse the current value now: a malformed secret or unknown engine is
	// refused before anything is written.
	cur, eng, err := s.parse(ctx, o, current)
	if err != nil {
		return Context{}, err
	}
	if cur.MasterARN != "" && !in.Rollback {
		if err := checkClone(o, eng, cur); err != nil {
			return Context{}, err
		}
	}
	l, err = s.Ledger.Acquire(ctx, ledger.AcquireRequest{
		Secret: d.ARN, Execution: in.ExecutionArn, Token: in.ClientRequestToken, Actor: s.Actor,
		PreviousVersion: current, PreviousPrevious: d.VersionWith(secretstore.Previous),
		Logins: logins(eng, cur), Known: &known,
	})
	var held *ledger.HeldError
	if errors.As(err, &held) {
		return Context{}, o.conflict("another rotation holds the lease", held)
	}
	var loginHeld *ledger.LoginHeldError
	if errors.As(err, &loginHeld) {
		// Another secret names the same database login and is rotating
		// it: changing it now would change the password that rotation
		// sets, tests and stores. Nothing was written; try again later.
		return Context{}, o.conflict("another secret's rotation is changing the same database login", loginHeld)
	}
	if err != nil {
		return Context{}, err
	}
	// The ledger recorded what it took over, in the same write as the
	// takeover: a retried acquire recovers the same dead rotation.
	var recovery *Recovery
	if t := l.TakenOver; t != nil {
		recovery = &Recovery{Execution: t.Execution, Fencing: t.Fencing, Token: t.Token, State: string(t.State),
			PreviousVersionId: t.PreviousVersion, PreviousPreviousVersionId: t.PreviousPrevious,
			SetMayHaveRun: t.SetMayHaveRun, FinishMayHaveRun: t.FinishMayHaveRun}
	}
	return Context{
		SecretId: in.SecretId, SecretArn: d.ARN, ClientRequestToken: l.Token, ExecutionArn: l.Holder,
		Fencing: l.Fencing, PreviousVersionId: l.PreviousVersion, PreviousPreviousVersionId: l.PreviousPrevious,
		LedgerTable: in.LedgerTable, Rollback: in.Rollback, HealthCheckUrl: in.HealthCheckUrl, BakeSeconds: in.BakeSeconds,
		BakeAlarms: in.BakeAlarms, Recover: recovery, Policy: &policy,
		ReleaseAtFinish: !in.Verify && in.HealthCheckUrl == "" && len(in.BakeAlarms) == 0,
		Last:            &StepOutput{Step: StepAcquire, Lease: &l},
	}, nil
}

// logins are the database logins a rotation of cur changes, locked with its
// lease: the user, and with alternating users (masterarn) both users,
// whichever of the two AWSCURRENT names now. The engine's own name, not the
// secret's alias ("postgres" and "aurora-postgresql" are one server).
func logins(eng target.Engine, cur *secret.Value) []ledger.Login {
	out := []ledger.Login{{Engine: eng.Name(), Host: cur.Host, Port: cur.Port, User: cur.Username}}
	if cur.MasterARN != "" {
		out = append(out, ledger.Login{Engine: eng.Name(), Host: cur.Host, Port: cur.Port, User: secret.AlternateUsername(cur.Username)})
	}
	return out
}

func login(eng target.Engine, v *secret.Value, user string) ledger.Login {
	return ledger.Login{Engine: eng.Name(), Host: v.Host, Port: v.Port, User: user}
}

// checkOther refuses to switch an alternating-users secret from cur's user
// to other unless secretsaga was given other or created it (DESIGN.md
// invariant 6): other does not exist yet (set creates and records it), or
// the ledger's record or the server's mark says secretsaga created other as
// the clone of cur's user, or cur's user as the clone of other (then other
// is the user the secret started with). An existing user with neither is
// someone else's, even if its name ends in _clone: InputError, and nothing
// changes.
func (s *Service) checkOther(ctx context.Context, o op, eng target.Engine, master, cur *secret.Value, other string) error {
	res, err := eng.EnsureUser(ctx, target.EnsureUserRequest{Master: target.FromValue(master), Username: other, Like: cur.Username, CheckOnly: true})
	if err = o.targetErr(err, "the master secret "+cur.MasterARN+" does not log in as "+master.Username, o.input); err != nil {
		return err
	}
	if !res.Exists || res.Mark == cur.Username || res.LikeMark == other {
		return nil
	}
	for _, pair := range [][2]string{{other, cur.Username}, {cur.Username, other}} {
		c, ok, err := s.Ledger.Clone(ctx, login(eng, cur, pair[0]))
		if err != nil {
			return err
		}
		if ok && c.CloneOf == pair[1] {
			return nil
		}
	}
	return o.input(fmt.Sprintf("the alternating-users strategy would switch from user %q to user %q, which exists on the server but which secretsaga did not create (no record in the ledger, no mark on the server): it may be someone else's, so it is left alone. If secretsaga created it (a version that kept no record), %s; otherwise drop or rename that user, or remove masterarn to rotate %q's own password",
		cur.Username, other, markHowTo(s.Ledger.Table(), eng, login(eng, cur, other), cur.Username), cur.Username), nil)
}

// markHowTo says how a person records that secretsaga created clone as
// the clone of user: the server's mark where the engine keeps one,
// otherwise the ledger's record.
func markHowTo(table string, eng target.Engine, clone ledger.Login, user string) string {
	if eng.Capabilities().CloneMarks {
		return fmt.Sprintf("mark it as the clone of %q: COMMENT ON ROLE %s IS '%s'", user, pgIdent(clone.User), strings.ReplaceAll(target.CloneMark(user), "'", "''"))
	}
	c := ledger.NewClone(clone, user)
	item, _ := json.Marshal(map[string]map[string]string{"pk": {"S": c.PK}, "sk": {"S": c.SK}, "login": {"S": c.Login}, "cloneOf": {"S": c.CloneOf}})
	return fmt.Sprintf("record it in the ledger: aws dynamodb put-item --table-name %s --item '%s'", table, strings.ReplaceAll(string(item), "'", `'\''`))
}

// pgIdent quotes a PostgreSQL identifier.
func pgIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// parse reads one version's value and finds its engine.
func (s *Service) parse(ctx context.Context, o op, versionID string) (*secret.Value, target.Engine, error) {
	raw, err := s.Secrets.Value(ctx, o.rc.SecretArnOrID(), versionID, "")
	if errors.Is(err, secretstore.ErrNoSuchVersion) {
		return nil, nil, o.conflict("version "+versionID+" no longer exists", err)
	}
	if errors.Is(err, secretstore.ErrBinary) {
		return nil, nil, o.input("version "+versionID+" holds SecretBinary; secretsaga rotates the database-secret JSON in SecretString: store it with put-secret-value --secret-string", err)
	}
	if err != nil {
		return nil, nil, err
	}
	return s.parseValue(o, versionID, raw)
}

// parseValue parses the value of version versionID and finds its engine.
func (s *Service) parseValue(o op, versionID, raw string) (*secret.Value, target.Engine, error) {
	v, err := secret.Parse(raw)
	if err != nil {
		return nil, nil, o.input("version "+versionID+" is malformed", err)
	}
	if v.Engine == "" {
		return nil, nil, o.input("version "+versionID+" is malformed", &secret.FieldError{Field: secret.FieldEngine, Reason: "is missing; set it to the database engine, e.g. \"postgres\""})
	}
	eng, err := s.Engines.Lookup(v.Engine)
	if err != nil {
		return nil, nil, o.input("version "+versionID+" names an unsupported engine", err)
	}
	if err := v.Validate(eng.DefaultPort()); err != nil {
		return nil, nil, o.input("version "+versionID+" is malformed", err)
	}
	if v.MasterARN != "" && !eng.Capabilities().Alternating {
		// A masterarn asks for the alternating-users strategy; rotating the
		// user's own password instead would silently do something else.
		return nil, nil, o.input("version "+versionID+" names a master secret (masterarn), which asks for the alternating-users strategy; engine "+eng.Name()+" supports only single-user rotation here: remove masterarn to rotate the user's own password", nil)
	}
	return v, eng, nil
}

// checkToken refuses a token that would make the saga do something other
// than asked: a rotation needs a version id nobody uses yet; a rollback
// names the AWSPREVIOUS version, which must log in to the same target.
func (s *Service) checkToken(ctx context.Context, o op, in AcquireInput, d secretstore.Description, current string) error {
	token := in.ClientRequestToken
	if current == token {
		return o.input("the ClientRequestToken is already the AWSCURRENT version; start a new rotation with a new token", nil)
	}
	if !in.Rollback {
		if _, exists := d.Versions[token]; !exists {
			if in.TokenIsNew {
				return nil // a UUID made for this execution names no version
			}
			return s.checkUnlabelled(ctx, o, token)
		}
		empty, err := s.rotateSecretVersion(ctx, o, d, token)
		if err != nil || empty {
			return err
		}
		return o.input("the ClientRequestToken names an existing version; a rotation needs a new one (omit it to have one made), and returning to AWSPREVIOUS is a rollback (Rollback: true)", nil)
	}
	prev := d.VersionWith(secretstore.Previous)
	switch {
	case prev == "":
		return o.input("there is no AWSPREVIOUS version to roll back to", nil)
	case token != prev:
		return o.input("a rollback's ClientRequestToken must be the AWSPREVIOUS version, "+prev, nil)
	}
	old, _, err := s.parse(ctx, o, prev)
	if err != nil {
		return o.input("AWSPREVIOUS cannot be rolled back to", err)
	}
	cur, _, err := s.parse(ctx, o, current)
	if err != nil {
		return err
	}
	if !old.SameTarget(cur) {
		return o.input("AWSPREVIOUS names a different engine, host, port, user or database than AWSCURRENT; a rollback only changes the password back", nil)
	}
	return nil
}

// checkUnlabelled refuses a token that names a version without staging
// labels (an older one, or one a rollback left behind): DescribeSecret does
// not list those, but Secrets Manager versions are immutable, so create's
// PutSecretValue would fail on it (ResourceExistsException) after retries.
// It is the caller's input that is wrong, as with a labelled version, and
// only a new token helps: InputError, not a ConflictError (no other actor
// is at work) nor a RetryableError (no retry can succeed).
func (s *Service) checkUnlabelled(ctx context.Context, o op, token string) error {
	exists, err := s.Secrets.HasVersion(ctx, o.rc.SecretArnOrID(), token)
	if err != nil {
		return err
	}
	if exists {
		return o.input("the ClientRequestToken names version "+token+", an older version of the secret that no longer carries a staging label; versions cannot be changed, so a rotation needs a new token (omit it to have one made)", nil)
	}
	return nil
}

// checkClone refuses an alternating-users secret whose other user's name
// (<user>_clone) the server would not accept: every rotation would fail
// at set, and on PostgreSQL a longer name is truncated to another role's.
func checkClone(o op, eng target.Engine, cur *secret.Value) error {
	limit, ok := eng.Capabilities().UsernameLimit(cur.Engine)
	other := secret.AlternateUsername(cur.Username)
	if !ok || limit.Fits(other) {
		return nil
	}
	n := len(other)
	if !limit.Bytes {
		n = utf8.RuneCountInString(other)
	}
	return o.input(fmt.Sprintf("the alternating-users strategy needs a second user %q (%d %s), longer than the %d %s of %s; use a user name of at most %d %s so that %q fits, or rotate the user's own password (remove masterarn)",
		other, n, limit.Unit(), limit.Max, limit.Unit(), limit.Cause, limit.Max-len(secret.CloneSuffix), limit.Unit(), secret.CloneSuffix), nil)
}

// rotateSecretVersion reports whether token's version is the one Secrets
// Manager's RotateSecret creates before it invokes the rotation function
// (native rotation): labelled AWSPENDING alone and holding no value ("During
// rotation, Secrets Manager creates an AWSPENDING version ID before creating
// the new secret version", DescribeSecret). That version is this rotation's
// to fill, not a reused token. One that holds a value, or carries any other
// label, is someone's version.
func (s *Service) rotateSecretVersion(ctx context.Context, o op, d secretstore.Description, token string) (bool, error) {
	if st := d.Versions[token]; len(st) != 1 || st[0] != secretstore.Pending {
		return false, nil
	}
	filled, err := s.Secrets.Filled(ctx, o.rc.SecretArnOrID(), token)
	if errors.Is(err, secretstore.ErrNoSuchVersion) {
		return false, o.conflict("version "+token+" disappeared while it was checked", err)
	}
	return err == nil && !filled, err
}

// checkBake refuses a bake that cannot run: a health check that is not a
// URL, a bake too long for the verify function, alarm names CloudWatch
// cannot have, or BakeSeconds with nothing to watch.
func checkBake(o op, in AcquireInput) error {
	if len(in.BakeAlarms) > MaxBakeAlarms {
		return o.input(fmt.Sprintf("BakeAlarms names %d alarms; at most %d are allowed", len(in.BakeAlarms), MaxBakeAlarms), nil)
	}
	for _, name := range in.BakeAlarms {
		if name == "" || len(name) > maxAlarmName {
			return o.input(fmt.Sprintf("BakeAlarms holds %q; a CloudWatch alarm name is 1 to %d characters", name, maxAlarmName), nil)
		}
	}
	alarms := len(in.BakeAlarms) > 0 || len(o.s.BakeAlarmNames) > 0
	if in.HealthCheckUrl == "" && !alarms {
		if in.BakeSeconds != 0 {
			return o.input("BakeSeconds needs a HealthCheckUrl or BakeAlarms to watch", nil)
		}
		return nil
	}
	if in.HealthCheckUrl != "" {
		u, err := url.Parse(in.HealthCheckUrl)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return o.input("HealthCheckUrl must be an absolute http(s) URL", nil)
		}
	}
	if in.BakeSeconds < 0 || in.BakeSeconds > MaxBakeSeconds {
		return o.input(fmt.Sprintf("BakeSeconds must be 0 to %d (the verify function's timeout bounds the bake)", MaxBakeSeconds), nil)
	}
	return nil
}

// master reads the alternating strategy's master secret (AWSCURRENT of
// the secret that cur's masterarn names): the administrator login that
// creates the clone and sets the other user's password.
func (s *Service) master(ctx context.Context, o op, cur *secret.Value, eng target.Engine) (*secret.Value, error) {
	raw, err := s.Secrets.Value(ctx, cur.MasterARN, "", secretstore.Current)
	if errors.Is(err, secretstore.ErrNoSuchVersion) {
		return nil, o.input("the master secret "+cur.MasterARN+" (masterarn) does not exist or has no AWSCURRENT version; masterarn must name the secret holding the administrator's login", err)
	}
	if errors.Is(err, secretstore.ErrBinary) {
		return nil, o.input("the master secret "+cur.MasterARN+" (masterarn) holds SecretBinary; store the administrator's database-secret JSON in SecretString", err)
	}
	if err != nil {
		return nil, err
	}
	m, err := secret.Parse(raw)
	if err == nil {
		err = m.Validate(eng.DefaultPort())
	}
	if err != nil {
		return nil, o.input("the master secret "+cur.MasterARN+" is malformed", err)
	}
	if m.Engine != cur.Engine || m.Host != cur.Host || m.Port != cur.Port {
		return nil, o.input("the master secret "+cur.MasterARN+" names a different server than the secret", nil)
	}
	if m.Username == cur.Username || m.Username == secret.AlternateUsername(cur.Username) {
		return nil, o.input("the master secret's user is one of the two users it would alternate; use an administrator of its own", nil)
	}
	return m, nil
}

// SecretArnOrID is the id to call Secrets Manager with.
func (rc Context) SecretArnOrID() string {
	if rc.SecretArn != "" {
		return rc.SecretArn
	}
	return rc.SecretId
}

// Create stores a new password as AWSPENDING under the token. If the token's
// version already holds a value and carries AWSPENDING, it does nothing; the
// empty AWSPENDING version native rotation's RotateSecret creates is filled.
func (s *Service) Create(ctx context.Context, rc Context) (StepOutput, error) {
	o := s.op(StepCreate, rc)
	changed, err := s.create(ctx, o)
	return o.output(changed), o.done(err, changed)
}

func (s *Service) create(ctx context.Context, o op) (bool, error) {
	l, err := o.lease(ctx)
	if err != nil {
		return false, err
	}
	// The common case, a first attempt with the policy acquire read, takes
	// two calls: AWSCURRENT's id and value in one read, then the new
	// version. What the full checks below learn from DescribeSecret, acquire
	// established under this lease (AWSPENDING on no other version, the
	// token new or RotateSecret's empty version), or the calls themselves
	// refuse: AWSCURRENT must still be the version recorded at start, and
	// PutSecretValue refuses a token whose version holds another value (an
	// earlier attempt's whose answer was lost, or an old version a caller
	// named); either sends this attempt through the full checks.
	if o.rc.Policy != nil && !o.rc.Rollback && o.rc.Recover == nil && progress[l.State] < progress[ledger.Created] {
		changed, fast, err := s.createFast(ctx, o, &l, *o.rc.Policy)
		if fast {
			return changed, err
		}
	}
	d, err := s.Secrets.Describe(ctx, o.rc.SecretArn)
	if err != nil {
		return false, err
	}
	token := o.rc.ClientRequestToken
	// The token's version may exist without a value: native rotation's
	// RotateSecret created it with AWSPENDING for this rotation to fill.
	// Only a version that holds a value is one create already made.
	filled := false
	if _, exists := d.Versions[token]; exists {
		filled, err = s.Secrets.Filled(ctx, o.rc.SecretArn, token)
		if errors.Is(err, secretstore.ErrNoSuchVersion) {
			err = nil // gone since Describe: stored anew below
		}
		if err != nil {
			return false, err
		}
	}
	if filled && d.HasStage(token, secretstore.Pending) {
		return false, o.journal(ctx, &l, ledger.Created, ledger.Change{})
	}
	if cur := d.VersionWith(secretstore.Current); cur != o.rc.PreviousVersionId {
		return false, o.conflict("AWSCURRENT moved to version "+cur+" since this rotation started", nil)
	}
	// AWSPENDING may be on the token's empty version (native rotation) or,
	// left by a rotation function that does not remove it, on AWSCURRENT
	// (acquire accepted both); storing the value moves it to the token.
	p := d.VersionWith(secretstore.Pending)
	if p != "" && p != token && p != o.rc.PreviousVersionId {
		return false, o.conflict("AWSPENDING is on version "+p+", not this rotation's", nil)
	}
	if filled {
		// Our version exists but lost its label (an earlier attempt crashed
		// between calls, or someone removed it): label it again.
		return true, errors.Join(s.Secrets.MoveStage(ctx, o.rc.SecretArn, secretstore.Pending, token, p),
			o.journal(ctx, &l, ledger.Created, ledger.Change{}))
	}
	cur, eng, err := s.parse(ctx, o, o.rc.PreviousVersionId)
	if err != nil {
		return false, err
	}
	policy, err := secretstore.PolicyFromTags(d.Tags)
	if err != nil {
		return false, o.input(err.Error(), nil)
	}
	changed, err := s.store(ctx, o, &l, policy, cur, eng)
	if secretstore.IsVersionExists(err) {
		// Not a version DescribeSecret lists (those were handled above):
		// an unlabelled older one, named by a caller that said the token
		// was new (AcquireInput.TokenIsNew).
		return false, o.input("the ClientRequestToken names version "+token+", an older version of the secret that holds another value; versions cannot be changed, so a rotation needs a new token (omit it to have one made)", err)
	}
	return changed, err
}

// createFast is create's first attempt: it reads AWSCURRENT (id and value)
// and stores the new version. fast is false when the full checks must
// decide instead: AWSCURRENT is not the version recorded at start (or not
// readable as one), or the token's version already holds a value.
func (s *Service) createFast(ctx context.Context, o op, l *ledger.Lease, policy secretstore.Policy) (changed, fast bool, err error) {
	id, raw, err := s.Secrets.Current(ctx, o.rc.SecretArn)
	switch {
	case errors.Is(err, secretstore.ErrNoSuchVersion), errors.Is(err, secretstore.ErrBinary):
		return false, false, nil
	case err != nil:
		return false, true, err
	case id != o.rc.PreviousVersionId:
		return false, false, nil
	}
	cur, eng, err := s.parseValue(o, id, raw)
	if err != nil {
		return false, true, err
	}
	changed, err = s.store(ctx, o, l, policy, cur, eng)
	if secretstore.IsVersionExists(err) {
		return false, false, nil
	}
	return changed, true, err
}

// store checks that cur (AWSCURRENT at start) logs in, generates the new
// password and stores the new version as AWSPENDING under the token, then
// journals CREATED.
func (s *Service) store(ctx context.Context, o op, l *ledger.Lease, policy secretstore.Policy, cur *secret.Value, eng target.Engine) (bool, error) {
	token := o.rc.ClientRequestToken
	// Pre-flight: a rotation needs a working current credential, both to
	// log in for the change and to revert to. If it does not work (or the
	// target cannot be reached), stop before anything is created.
	err := eng.Verify(ctx, target.VerifyRequest{Credential: target.FromValue(cur)})
	if err = o.targetErr(err, "AWSCURRENT (version "+o.rc.PreviousVersionId+") does not log in as "+cur.Username+"; put the working password into AWSCURRENT before rotating", o.input); err != nil {
		return false, err
	}
	next := cur
	if cur.MasterARN != "" && !o.rc.Rollback {
		// Alternating users: the new version is the other user, whose
		// password set will change (creating it on first use) while the
		// user AWSCURRENT names keeps working untouched.
		m, err := s.master(ctx, o, cur, eng)
		if err != nil {
			return false, err
		}
		err = eng.Verify(ctx, target.VerifyRequest{Credential: target.FromValue(m)})
		if err = o.targetErr(err, "the master secret "+cur.MasterARN+" does not log in as "+m.Username, o.input); err != nil {
			return false, err
		}
		// The earliest step that can tell: before anything is created.
		if err := s.checkOther(ctx, o, eng, m, cur, secret.AlternateUsername(cur.Username)); err != nil {
			return false, err
		}
		next = cur.WithUsername(secret.AlternateUsername(cur.Username))
	}
	pw, err := policy.Generate()
	if err != nil {
		return false, o.input(err.Error(), nil)
	}
	// Write-ahead, as before every change: CREATED is journaled (under the
	// lease's fencing token) before the version is stored, so an execution
	// that lost its lease stores nothing. Compensation and recovery read the
	// stages themselves, so a CREATED whose version never landed only makes
	// a retry of this step store it.
	if err := o.journal(ctx, l, ledger.Created, ledger.Change{}); err != nil {
		return false, err
	}
	if err := s.Secrets.PutPending(ctx, o.rc.SecretArn, token, next.WithPassword(pw).SecretString()); err != nil {
		return false, err
	}
	return true, nil
}

// versions are the values a rotation works with.
type versions struct {
	engine           target.Engine
	pending, current *secret.Value
	// master is set for the alternating strategy, where pending names the
	// other user than current.
	master *secret.Value
	// previous reads AWSPREVIOUS as a fallback login, only when asked.
	previous func(ctx context.Context) ([]target.Credential, error)
}

// change is the request that gives user's password the value to: logged in
// as from (the other of AWSPENDING and AWSCURRENT), then as AWSPREVIOUS
// (read only if from is refused), or, for the alternating strategy, as the
// master, who alone may change the other user's password.
func (v versions) change(to, from *secret.Value) target.SetPasswordRequest {
	req := target.SetPasswordRequest{Username: to.Username, New: to.Password}
	if v.master != nil {
		req.Logins = []target.Credential{target.FromValue(v.master)}
		return req
	}
	req.Logins, req.More = []target.Credential{target.FromValue(from)}, v.previous
	return req
}

// load reads the pending (the token's) and current-at-start values; the
// previous one is read only if a change needs it as a login.
func (s *Service) load(ctx context.Context, o op) (versions, error) {
	var v versions
	var err error
	if v.current, v.engine, err = s.parse(ctx, o, o.rc.PreviousVersionId); err != nil {
		return v, err
	}
	if v.pending, _, err = s.parse(ctx, o, o.rc.ClientRequestToken); err != nil {
		return v, err
	}
	switch {
	case v.pending.SameTarget(v.current):
	case v.current.MasterARN != "" && v.pending.SameServer(v.current) && v.pending.Username == secret.AlternateUsername(v.current.Username):
		if v.master, err = s.master(ctx, o, v.current, v.engine); err != nil {
			return v, err
		}
	default:
		return v, o.input("the new version names a different engine, host, port, user or database than AWSCURRENT; a rotation only changes the password (or, with masterarn, switches to the other user)", nil)
	}
	cur := v.current
	v.previous = func(ctx context.Context) ([]target.Credential, error) {
		id := o.rc.PreviousPreviousVersionId
		if id == "" {
			return nil, nil
		}
		prev, _, err := s.parse(ctx, o, id)
		switch n := faults.Name(err); {
		case n == faults.NameInput || n == faults.NameConflict:
			// AWSPREVIOUS is only a fallback login: a malformed or
			// vanished one is ignored.
			return nil, nil
		case err != nil:
			return nil, err
		case !prev.SameTarget(cur):
			return nil, nil
		}
		return []target.Credential{target.FromValue(prev)}, nil
	}
	return v, nil
}

// targetErr maps an engine failure for a step.
func (o op) targetErr(err error, authReason string, auth func(string, error) error) error {
	var wrongProtocol *target.WrongProtocolError
	var tlsErr *target.TLSError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &wrongProtocol):
		// The secret's engine or port is wrong: no retry can help.
		return o.input(wrongProtocol.Error(), nil)
	case errors.As(err, &tlsErr):
		// The secret's tls, host or the CA bundle is wrong: no retry
		// can help, and nothing was changed (no session was opened).
		return o.input(tlsErr.Error(), nil)
	case errors.Is(err, target.ErrUnreachable):
		return &faults.RetryableError{Detail: o.detail("the target is unreachable", err)}
	case errors.Is(err, target.ErrAuthFailed):
		return auth(authReason, err)
	case errors.Is(err, target.ErrInvalid):
		return o.input("the target refused the request", err)
	}
	return err
}

// Set journals its intent, then changes the credential on the target. It logs
// in with AWSPENDING first (already done: nothing to change), then AWSCURRENT,
// then AWSPREVIOUS.
func (s *Service) Set(ctx context.Context, rc Context) (StepOutput, error) {
	o := s.op(StepSet, rc)
	changed, err := s.set(ctx, o)
	out := o.output(changed)
	if err == nil {
		// SET_DONE is journaled by test, with TESTED: one write fewer.
		// Nothing depends on it (compensation and recovery go by
		// SetMayHaveRun, set with SET_STARTED before the change), and a
		// zombie set is fenced at SET_STARTED, before anything changes.
		out.Journal = &JournalEntry{State: ledger.SetDone, Actor: s.Actor, At: s.now().UnixMilli()}
	}
	return out, o.done(err, changed)
}

func (s *Service) set(ctx context.Context, o op) (bool, error) {
	l, err := o.lease(ctx)
	if err != nil {
		return false, err
	}
	v, err := s.load(ctx, o)
	if err != nil {
		return false, err
	}
	// Write-ahead, at the last moment: from here on compensation must
	// assume the target changed. A target that cannot be reached, or
	// refuses every login, leaves nothing to revert.
	writeAhead := func(ctx context.Context) error {
		return o.journal(ctx, &l, ledger.SetStarted, ledger.Change{SetMayHaveRun: true})
	}
	if v.master != nil {
		// Checked at create already; again here, right before the change,
		// for a user someone created since.
		if err := s.checkOther(ctx, o, v.engine, v.master, v.current, v.pending.Username); err != nil {
			return false, err
		}
		// The clone is recorded in the same write as the write-ahead
		// record: the ledger knows it before the target has it.
		clone := ledger.NewClone(login(v.engine, v.current, v.pending.Username), v.current.Username)
		_, err := v.engine.EnsureUser(ctx, target.EnsureUserRequest{
			Master: target.FromValue(v.master), Username: v.pending.Username, Like: v.current.Username,
			BeforeChange: func(ctx context.Context) error {
				return o.journal(ctx, &l, ledger.SetStarted, ledger.Change{SetMayHaveRun: true, Clone: clone})
			},
		})
		if err = o.targetErr(err, "the master secret "+v.current.MasterARN+" does not log in", o.input); err != nil {
			return false, err
		}
	}
	req := v.change(v.pending, v.current)
	req.BeforeChange = writeAhead
	res, err := v.engine.SetPassword(ctx, req)
	if err = o.targetErr(err, "none of AWSPENDING, AWSCURRENT or AWSPREVIOUS can log in as "+v.current.Username+"; put a working password into AWSCURRENT", o.input); err != nil {
		return false, err
	}
	return !res.AlreadySet, nil
}

// Test logs in with AWSPENDING and runs the engine's probe.
func (s *Service) Test(ctx context.Context, rc Context) (StepOutput, error) {
	o := s.op(StepTest, rc)
	err := s.probe(ctx, o, rc.ClientRequestToken, ledger.Tested)
	return o.output(false), o.done(err, false)
}

// setsRecord is the SET_DONE record set left in its output (Context.Last)
// while nothing was journaled after set: the lease is as set left it.
func (o op) setsRecord(l ledger.Lease) *ledger.Record {
	last := o.rc.Last
	if last == nil || last.Step != StepSet || last.Journal == nil || last.Journal.State != ledger.SetDone {
		return nil
	}
	if k, known := o.known(ledger.SetStarted); !known || l.State != ledger.SetStarted || l.Fencing != k.Fencing || l.Seq != k.Seq {
		return nil
	}
	rec := last.Journal.Record()
	return &rec
}

// setDone is the SET_DONE record test journals before TESTED, in the same
// write, when the journal has not reached it: set's own (Context.Last,
// with set's time and actor), or, without it (a caller that does not pass
// the previous step's output), one of test's, which says so.
func (o op) setDone(l ledger.Lease) *ledger.Record {
	if p, ok := progress[l.State]; ok && p >= progress[ledger.SetDone] {
		return nil
	}
	if rec := o.setsRecord(l); rec != nil {
		return rec
	}
	return &ledger.Record{State: ledger.SetDone, Actor: o.s.Actor, Detail: "journaled by test: the new password logs in"}
}

// Verify (the bake step) confirms that AWSCURRENT is still the token's
// version and still authenticates after finish; a failure rolls back.
func (s *Service) Verify(ctx context.Context, rc Context) (StepOutput, error) {
	o := s.op(StepVerify, rc)
	err := s.verify(ctx, o)
	return o.output(false), o.done(err, false)
}

func (s *Service) verify(ctx context.Context, o op) error {
	d, err := s.Secrets.Describe(ctx, o.rc.SecretArn)
	if err != nil {
		return err
	}
	if cur := d.VersionWith(secretstore.Current); cur != o.rc.ClientRequestToken {
		return o.conflict("AWSCURRENT is version "+cur+", not this rotation's", nil)
	}
	if err := s.bake(ctx, o); err != nil {
		return err
	}
	return s.probe(ctx, o, o.rc.ClientRequestToken, ledger.Verified)
}

// bake watches the health check and the CloudWatch alarms for BakeSeconds
// (at least one check): any health answer other than 2xx, or none, or any
// alarm in ALARM fails the rotation, which rolls it back.
func (s *Service) bake(ctx context.Context, o op) error {
	alarms := s.bakeAlarms(o.rc)
	if o.rc.HealthCheckUrl == "" && len(alarms) == 0 {
		return nil
	}
	if len(alarms) > 0 && s.Alarms == nil {
		return o.input("the bake names CloudWatch alarms but the verify function has no CloudWatch client", nil)
	}
	deadline := s.now().Add(time.Duration(o.rc.BakeSeconds) * time.Second)
	client := &http.Client{Timeout: 5 * time.Second}
	for checks := 0; ; checks++ {
		if o.rc.HealthCheckUrl != "" {
			if err := healthCheck(ctx, client, o.rc.HealthCheckUrl); err != nil {
				return o.testFailed(fmt.Sprintf("the health check failed after %d good answers during the bake", checks), err)
			}
		}
		if err := s.checkAlarms(ctx, o, alarms, checks); err != nil {
			return err
		}
		if !s.now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(2*time.Second, time.Until(deadline))):
		}
	}
}

// bakeAlarm is an alarm the bake watches and who named it.
type bakeAlarm struct {
	name, source string
}

// bakeAlarms merges the deploy-time alarms with the execution's, once each.
func (s *Service) bakeAlarms(rc Context) []bakeAlarm {
	var out []bakeAlarm
	seen := map[string]bool{}
	add := func(names []string, source string) {
		for _, n := range names {
			if n = strings.TrimSpace(n); n != "" && !seen[n] {
				seen[n] = true
				out = append(out, bakeAlarm{name: n, source: source})
			}
		}
	}
	add(s.BakeAlarmNames, "the verify function's BAKE_ALARM_NAMES")
	add(rc.BakeAlarms, "the execution input's BakeAlarms")
	return out
}

// checkAlarms is one bake check of the alarms: every one must exist and
// none may be in ALARM.
func (s *Service) checkAlarms(ctx context.Context, o op, alarms []bakeAlarm, checks int) error {
	if len(alarms) == 0 {
		return nil
	}
	names := make([]string, len(alarms))
	for i, a := range alarms {
		names[i] = a.name
	}
	states, err := s.Alarms.AlarmStates(ctx, names)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && strings.HasPrefix(ae.ErrorCode(), "AccessDenied") {
			return o.input("the verify function may not read the bake's CloudWatch alarms; grant its role cloudwatch:DescribeAlarms", err)
		}
		return fmt.Errorf("describe the bake's CloudWatch alarms: %w", err)
	}
	for _, a := range alarms {
		if st, ok := states[a.name]; ok && st.State == AlarmStateAlarm {
			return o.testFailed(fmt.Sprintf("CloudWatch alarm %q is in ALARM during the bake (after %d good checks): %s", a.name, checks, st.Reason), nil)
		}
	}
	for _, a := range alarms {
		if _, ok := states[a.name]; !ok {
			return o.input(fmt.Sprintf("CloudWatch alarm %q, named in %s, does not exist in this account and region; create it or remove it from there", a.name, a.source), nil)
		}
	}
	return nil
}

func healthCheck(ctx context.Context, client *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		// The URL is the operator's; keep only the failure's kind.
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("health check %s: %w", ue.Op, ue.Err)
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health check answered %d", resp.StatusCode)
	}
	return nil
}

func (s *Service) probe(ctx context.Context, o op, versionID string, state ledger.State) error {
	l, err := o.lease(ctx)
	if err != nil {
		return err
	}
	v, eng, err := s.parse(ctx, o, versionID)
	if err != nil {
		return err
	}
	err = eng.Verify(ctx, target.VerifyRequest{Credential: target.FromValue(v)})
	if err = o.targetErr(err, "the new password does not log in as "+v.Username, o.testFailed); err != nil {
		if errors.Is(err, target.ErrInvalid) {
			return o.testFailed("the probe failed", err)
		}
		return err
	}
	if state == ledger.Tested {
		if done := o.setDone(l); done != nil {
			// SET_DONE, then TESTED, in one write; if the journal went
			// past SET_DONE meanwhile (a retry whose write landed), TESTED
			// alone below, if still needed.
			then := ledger.Record{State: state, Actor: o.s.Actor}
			if err := o.journalRecord(ctx, &l, *done, ledger.Change{Then: &then}); err != nil {
				return err
			}
		}
	}
	return o.journal(ctx, &l, state, ledger.Change{})
}

// Finish moves AWSCURRENT to the token. RemoveFromVersionId names the
// version recorded at start, so Secrets Manager refuses the move if anyone
// else moved AWSCURRENT meanwhile: a compare-and-swap. Secrets Manager moves
// AWSPREVIOUS itself. Then AWSPENDING comes off the token.
func (s *Service) Finish(ctx context.Context, rc Context) (StepOutput, error) {
	o := s.op(StepFinish, rc)
	changed, err := s.finish(ctx, o)
	if errors.Is(err, ledger.ErrFenced) && rc.ReleaseAtFinish {
		// A retry of a finish that ended the rotation (its answer was
		// lost, or it crashed after the write) finds the lease freed by
		// its own FINISHED (the fencing token names this execution's lease):
		// done, not fenced.
		if l, ok, gerr := s.Ledger.Get(ctx, rc.SecretArn); gerr == nil && ok && o.finishedHere(l) {
			*o.seen = l
			changed, err = false, nil
		}
	}
	return o.output(changed), o.done(err, changed)
}

// finishDone journals FINISH_DONE. A rotation without a bake
// (ReleaseAtFinish) journals FINISHED after it in the same write and frees
// the lease, as release would have: release then only announces it.
func (o op) finishDone(ctx context.Context, l *ledger.Lease) error {
	ch := ledger.Change{}
	if o.rc.ReleaseAtFinish {
		rec := o.finishedRecord()
		ch.Then, ch.Release = &rec, true
	}
	return o.journal(ctx, l, ledger.FinishDone, ch)
}

// finishedRecord is the journal's FINISHED record of this rotation.
func (o op) finishedRecord() ledger.Record {
	rec := ledger.Record{State: ledger.Finished, Actor: o.s.Actor}
	if o.rc.Rollback {
		rec.Detail = "operator rollback: AWSPREVIOUS " + o.rc.ClientRequestToken + " is AWSCURRENT again"
	}
	return rec
}

func (s *Service) finish(ctx context.Context, o op) (bool, error) {
	l, err := o.lease(ctx)
	if err != nil {
		return false, err
	}
	token, arn := o.rc.ClientRequestToken, o.rc.SecretArn
	if l.State == ledger.Tested {
		// The common case, a first attempt: journal the intent, then move
		// AWSCURRENT with the version recorded at start as the one to
		// remove it from. No read is needed first: the move is the
		// compare-and-swap, and any refusal (someone else's version is
		// AWSCURRENT, ours is gone) sends this attempt through the checks
		// below, which tell the cases apart (a crash between the journal
		// and the move looks the same to compensation, which reads the
		// stages itself).
		if err := o.journal(ctx, &l, ledger.FinishStarted, ledger.Change{FinishMayHaveRun: true}); err != nil {
			return false, err
		}
		err := s.Secrets.MoveStage(ctx, arn, secretstore.Current, token, o.rc.PreviousVersionId)
		if err == nil {
			// AWSPENDING came to the token at create; it comes off now.
			if err := s.Secrets.RemoveStage(ctx, arn, secretstore.Pending, token); err != nil && !secretstore.IsStageMismatch(err) {
				return true, err
			}
			return true, o.finishDone(ctx, &l)
		}
		if !secretstore.IsStageMismatch(err) && !secretstore.IsNotFound(err) {
			return false, err
		}
	}
	d, err := s.Secrets.Describe(ctx, o.rc.SecretArn)
	if err != nil {
		return false, err
	}
	changed := false
	switch cur := d.VersionWith(secretstore.Current); cur {
	case token: // moved already (a retry after the move)
	case o.rc.PreviousVersionId:
		if _, ok := d.Versions[token]; !ok {
			return false, o.conflict("this rotation's version "+token+" no longer exists", nil)
		}
		if progress[l.State] < progress[ledger.Tested] {
			// The state machine never gets here untested; anything else
			// calling finish must not make an unproven password current.
			return false, o.input("finish before the new password was tested (the ledger says "+string(l.State)+"); run test first", nil)
		}
		if err := o.journal(ctx, &l, ledger.FinishStarted, ledger.Change{FinishMayHaveRun: true}); err != nil {
			return false, err
		}
		err := s.Secrets.MoveStage(ctx, arn, secretstore.Current, token, cur)
		if secretstore.IsStageMismatch(err) {
			return false, o.conflict("AWSCURRENT moved while finishing", err)
		}
		if err != nil {
			return false, err
		}
		changed = true
	default:
		return false, o.conflict("AWSCURRENT moved to version "+cur+", which this rotation did not create", nil)
	}
	if d.HasStage(token, secretstore.Pending) {
		if err := s.Secrets.RemoveStage(ctx, arn, secretstore.Pending, token); err != nil && !secretstore.IsStageMismatch(err) {
			return changed, err
		}
	}
	return changed, o.finishDone(ctx, &l)
}
