package cli

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/rotation"
)

var statusCmd = &command{
	name: "status", args: "<secret>",
	short: "show a secret's versions, lease and last rotation, and what is wrong",
	long: `Shows a secret's versions and stages, its lease in the ledger (holder,
fencing token, state, held or expired), its last rotation, and, when the
secret is stuck, exactly what is wrong and the commands that fix it.

<secret> is the secret's name or ARN. Exit status 3 when the secret is stuck
(a rotation cannot start or applications may be handed a broken value).`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		return func(e *env, pos []string) int {
			id, err := exactlyOne(pos, "secret")
			if err == nil {
				err = e.status(id)
			}
			if errors.Is(err, errBreach) {
				return ExitBreach
			}
			if err != nil {
				return e.fail("status", err)
			}
			return ExitOK
		}
	},
}

// Severities of a problem.
const (
	sevStuck   = "stuck"   // exit 3: needs an operator
	sevWarning = "warning" // worth a look, not blocking
	sevInfo    = "info"
)

type problem struct {
	Severity string   `json:"severity"`
	What     string   `json:"what"`
	Fix      []string `json:"fix,omitempty"`
}

type leaseReport struct {
	Holder           string     `json:"holder,omitempty"`
	HolderStatus     string     `json:"holderStatus,omitempty"`
	Fencing          int64      `json:"fencing"`
	Seq              int64      `json:"seq"`
	State            string     `json:"state"`
	Held             bool       `json:"held"`
	Expired          bool       `json:"expired"`
	Until            *time.Time `json:"until,omitempty"`
	Token            string     `json:"version"`
	PreviousVersion  string     `json:"previousVersion,omitempty"`
	SetMayHaveRun    bool       `json:"setMayHaveRun"`
	FinishMayHaveRun bool       `json:"finishMayHaveRun"`
	StartedAt        *time.Time `json:"startedAt,omitempty"`
	UpdatedAt        *time.Time `json:"updatedAt,omitempty"`
	// Repair is the self-healing state while the lease is in the repair
	// queue (after COMPENSATION_FAILED).
	Repair *repairReport `json:"repair,omitempty"`
}

// repairReport: the repair function's attempts at a queued secret. The
// next attempt and the alert are computed with the default policy
// (rotation.DefaultRepair*): the deployed function's REPAIR_BACKOFF,
// REPAIR_MAX_BACKOFF and REPAIR_ALERT_AFTER may differ, and the ledger
// does not record them.
type repairReport struct {
	Since       time.Time  `json:"since"`
	Attempts    int        `json:"attempts"`
	LastAttempt *time.Time `json:"lastAttempt,omitempty"`
	NextAttempt time.Time  `json:"nextAttemptDefaultPolicy"`
	AlertAt     time.Time  `json:"alertAtDefaultPolicy"`
	Note        string     `json:"note,omitempty"`
}

func newRepairReport(r ledger.Repair) *repairReport {
	if !r.Queued() {
		return nil
	}
	var p rotation.RepairPolicy
	rr := &repairReport{Since: r.SinceTime().UTC(), Attempts: r.Attempts, Note: r.Note,
		NextAttempt: r.LastAtTime().Add(p.Delay(r.Attempts)).UTC(), AlertAt: r.SinceTime().Add(rotation.DefaultRepairAlertAfter).UTC()}
	if r.Attempts > 0 {
		rr.LastAttempt = timePtr(r.LastAtTime().UTC())
	}
	return rr
}

type loginLockReport struct {
	Login string `json:"login"`
	Held  bool   `json:"held"`
	// Secret, Holder and Fencing are the rotation that holds (or last
	// held) the login.
	Secret  string `json:"secret"`
	Holder  string `json:"holder,omitempty"`
	Fencing int64  `json:"fencing"`
	State   string `json:"state,omitempty"`
}

type rotationReport struct {
	Rotation   int64     `json:"rotation"`
	Version    string    `json:"version"`
	Outcome    string    `json:"outcome"`
	Time       time.Time `json:"time"`
	ErrorClass string    `json:"errorClass,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	Execution  string    `json:"executionArn,omitempty"`
}

type statusReport struct {
	Secret       string          `json:"secret"`
	ARN          string          `json:"arn"`
	Health       string          `json:"health"` // OK, ROTATING, WARNING, STUCK
	DeletedDate  *time.Time      `json:"deletedDate,omitempty"`
	Versions     []versionInfo   `json:"versions"`
	Lease        *leaseReport    `json:"lease,omitempty"`
	LastRotation *rotationReport `json:"lastRotation,omitempty"`
	// LoginLocks are the database logins the lease locked (DESIGN.md
	// invariant 6): who holds each now.
	LoginLocks     []loginLockReport `json:"loginLocks,omitempty"`
	LastSuccessful *rotationReport   `json:"lastSuccessfulRotation,omitempty"`
	Problems       []problem         `json:"problems"`
}

func (e *env) status(id string) error {
	if err := e.needSM(); err != nil {
		return err
	}
	if err := e.needDB(); err != nil {
		return err
	}
	s, err := e.describe(id)
	if err != nil {
		return err
	}
	l := e.ledger()
	lease, hasLease, err := l.Get(e.ctx, s.ARN)
	if err != nil {
		return err
	}
	hist, err := l.History(e.ctx, s.ARN)
	if err != nil {
		return err
	}
	holderStatus := ""
	if hasLease && lease.Holder != "" {
		holderStatus = e.executionStatus(lease.Holder)
	}
	r := diagnose(s, lease, hasLease, hist, holderStatus, e.deps.Now(), e.g.ledgerTable)
	if hasLease {
		locks, err := l.LoginLocks(e.ctx, lease.LoginKeys())
		if err != nil {
			return err
		}
		for _, lk := range locks {
			r.LoginLocks = append(r.LoginLocks, loginLockReport{Login: lk.Login, Held: lk.Held, Secret: lk.Secret,
				Holder: lk.Holder, Fencing: lk.Fencing, State: string(lk.Owner.State)})
		}
	}
	if e.json() {
		if err := writeJSON(e.stdout, r); err != nil {
			return err
		}
	} else {
		printStatus(e, r)
	}
	if r.Health == "STUCK" {
		return errBreach
	}
	return nil
}

// executionStatus asks Step Functions about the lease holder: RUNNING,
// SUCCEEDED, ..., NOT_FOUND, or UNKNOWN when it cannot tell.
func (e *env) executionStatus(arn string) string {
	if e.deps.SFN == nil || !strings.HasPrefix(arn, "arn:") {
		return "UNKNOWN"
	}
	out, err := e.deps.SFN.DescribeExecution(e.ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	var nf *sfntypes.ExecutionDoesNotExist
	if errors.As(err, &nf) {
		return "NOT_FOUND"
	}
	if err != nil {
		return "UNKNOWN"
	}
	return string(out.Status)
}

func removePendingCmd(arn, version string) string {
	return fmt.Sprintf("aws secretsmanager update-secret-version-stage --secret-id %s --version-stage AWSPENDING --remove-from-version-id %s", arn, version)
}

func moveCurrentCmd(arn, to, from string) string {
	c := fmt.Sprintf("aws secretsmanager update-secret-version-stage --secret-id %s --version-stage AWSCURRENT --move-to-version-id %s", arn, to)
	if from != "" {
		c += " --remove-from-version-id " + from
	}
	return c
}

// releaseLeaseCmd frees the lease, conditioned on the holder and fencing
// token it has now, so that it cannot free a newer rotation's lease.
func releaseLeaseCmd(table string, l ledger.Lease) string {
	return fmt.Sprintf(`aws dynamodb update-item --table-name %s --key '{"pk":{"S":"%s"},"sk":{"S":"%s"}}' `+
		`--update-expression 'REMOVE holder SET leaseUntil = :zero' --condition-expression 'fencing = :f AND holder = :h' `+
		`--expression-attribute-values '{":zero":{"N":"0"},":f":{"N":"%d"},":h":{"S":"%s"}}'`,
		table, l.PK, l.SK, l.Fencing, l.Holder)
}

// diagnose decides what is wrong with a secret from its stages, lease,
// journal and the lease holder's execution status.
func diagnose(s secretInfo, lease ledger.Lease, hasLease bool, hist []ledger.Record, holderStatus string, now time.Time, table string) statusReport {
	r := statusReport{Secret: s.Name, ARN: s.ARN, Versions: s.Versions, DeletedDate: timePtr(s.Deleted), Problems: []problem{}}
	if r.Versions == nil {
		r.Versions = []versionInfo{}
	}
	add := func(sev, what string, fix ...string) {
		r.Problems = append(r.Problems, problem{Severity: sev, What: what, Fix: fix})
	}
	arn := s.ARN
	current := s.holder("AWSCURRENT")

	held := hasLease && lease.Held(now)
	running := false
	if hasLease {
		lr := &leaseReport{
			Holder: lease.Holder, HolderStatus: holderStatus, Fencing: lease.Fencing, Seq: lease.Seq, State: string(lease.State),
			Held: held, Expired: lease.Holder != "" && !held, Until: timePtr(lease.UntilTime()), Token: lease.Token,
			PreviousVersion: lease.PreviousVersion, SetMayHaveRun: lease.SetMayHaveRun, FinishMayHaveRun: lease.FinishMayHaveRun,
		}
		if lease.StartedAt != 0 {
			lr.StartedAt = timePtr(time.UnixMilli(lease.StartedAt))
		}
		if lease.UpdatedAt != 0 {
			lr.UpdatedAt = timePtr(lease.UpdatedAtTime())
		}
		lr.Repair = newRepairReport(lease.Repair)
		r.Lease = lr
		running = lease.Holder != "" && !lease.State.Terminal() &&
			(holderStatus == "RUNNING" || (holderStatus == "UNKNOWN" && held))
	}

	// The last rotation and the last successful one.
	var last, lastOK *rotationReport
	for _, rec := range hist {
		if !rec.State.Terminal() {
			continue
		}
		rr := &rotationReport{Rotation: rec.Fencing, Version: rec.Token, Outcome: string(rec.State), Time: rec.Time(),
			ErrorClass: rec.ErrorClass, Detail: rec.Detail, Execution: rec.Execution}
		last = rr
		if rec.State == ledger.Finished {
			lastOK = rr
		}
	}
	r.LastRotation, r.LastSuccessful = last, lastOK

	if !s.Deleted.IsZero() {
		add(sevStuck, fmt.Sprintf("the secret is scheduled for deletion on %s; no rotation can run", fmtTime(s.Deleted)),
			"aws secretsmanager restore-secret --secret-id "+arn)
	}
	for _, stage := range []string{"AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"} {
		if hs := s.holders(stage); len(hs) > 1 {
			add(sevStuck, fmt.Sprintf("more than one version carries %s: %s", stage, strings.Join(hs, ", ")),
				"keep "+stage+" on exactly one version; remove it from the others with `aws secretsmanager update-secret-version-stage --secret-id "+arn+" --version-stage "+stage+" --remove-from-version-id <version>`")
		}
	}
	if current == "" {
		var fix []string
		if prev := s.holder("AWSPREVIOUS"); prev != "" {
			fix = append(fix, "check that version "+prev+" (AWSPREVIOUS) logs in, then: "+moveCurrentCmd(arn, prev, ""))
		} else {
			fix = append(fix, "store the working credential: aws secretsmanager put-secret-value --secret-id "+arn+" --secret-string file://<file>")
		}
		add(sevStuck, "no version carries AWSCURRENT: applications cannot read the secret", fix...)
	}

	if hasLease && lease.Holder != "" {
		switch {
		case lease.State == ledger.CompensationFailed:
			what := fmt.Sprintf("rotation #%d (execution %s, new version %s) failed and its undo did not complete", lease.Fencing, executionName(lease.Holder), lease.Token)
			if last != nil && last.Rotation == lease.Fencing {
				if last.ErrorClass != "" {
					what += "; the rotation failed with " + last.ErrorClass
				}
				if last.Detail != "" {
					what += " (" + last.Detail + ")"
				}
			}
			what += ". The lease stays held (no rotation can start) until the repair function heals it: it retries on its schedule, from what logs in, and calls a person (\"Rotation Repair Needed\") when it cannot."
			var fix []string
			if rr := r.Lease.Repair; rr != nil {
				fix = append(fix, fmt.Sprintf("nothing, if the database (or Secrets Manager) was only unreachable: the repair's next attempt, due about %s with the default backoff, heals the secret once it answers (%d attempts so far). To attempt now, invoke the stack's repair function with {\"SecretId\": \"%s\", \"IgnoreBackoff\": true}",
					fmtTime(rr.NextAttempt), rr.Attempts, arn))
			}
			manual := len(fix)
			switch {
			case current == lease.Token:
				fix = append(fix, fmt.Sprintf("AWSCURRENT is on the new version %s. Check that it logs in (`secretctl get %s --version %s`); if it does not, set the database password back to version %s's and move AWSCURRENT back: %s",
					lease.Token, arn, lease.Token, lease.PreviousVersion, moveCurrentCmd(arn, lease.PreviousVersion, lease.Token)))
			case lease.SetMayHaveRun:
				fix = append(fix, fmt.Sprintf("the database password may already be the new version %s's while AWSCURRENT is %s: make the database accept AWSCURRENT again (set the user's password to the value of `secretctl get %s --stage AWSCURRENT`) and check that it logs in",
					lease.Token, current, arn))
			default:
				fix = append(fix, fmt.Sprintf("the database was not changed (set never started); check that AWSCURRENT (%s) logs in", current))
			}
			if slices.Contains(s.holders("AWSPENDING"), lease.Token) {
				fix = append(fix, removePendingCmd(arn, lease.Token))
			}
			fix = append(fix, "release the lease: "+releaseLeaseCmd(table, lease), "confirm with `secretctl status "+arn+"`, then rotate again: `secretctl rotate "+arn+" --wait`")
			if manual > 0 {
				fix[manual] = "only if the repair calls for a person (or is not deployed), by hand: " + fix[manual]
			}
			add(sevStuck, what, fix...)
		case running:
			add(sevInfo, fmt.Sprintf("rotation #%d is in progress (execution %s, state %s)", lease.Fencing, executionName(lease.Holder), lease.State))
		case held && !lease.State.Terminal():
			add(sevStuck, fmt.Sprintf("the lease is held by execution %s, which is %s, at state %s; no rotation can start until it expires at %s",
				executionName(lease.Holder), strings.ToLower(holderStatus), lease.State, fmtTime(lease.UntilTime())),
				"wait until "+fmtTime(lease.UntilTime())+", or release it now: "+releaseLeaseCmd(table, lease))
		case !held && !lease.State.Terminal():
			what := fmt.Sprintf("rotation #%d (execution %s) stopped at %s without finishing; its lease expired at %s", lease.Fencing, executionName(lease.Holder), lease.State, fmtTime(lease.UntilTime()))
			undo := "removes its AWSPENDING"
			if lease.SetMayHaveRun && current != lease.Token {
				undo = "sets the database password back to AWSCURRENT's and removes its AWSPENDING"
			}
			if current == lease.Token {
				undo = "keeps it (it had moved AWSCURRENT) and removes its AWSPENDING"
			}
			add(sevWarning, what, "the next rotation takes the expired lease and first cleans up after it (it "+undo+", journaled RECOVERED): `secretctl rotate "+arn+" --wait`")
		}
	}

	for _, p := range s.holders("AWSPENDING") {
		if running && p == lease.Token {
			continue
		}
		if hasLease && lease.State == ledger.CompensationFailed && lease.Holder != "" && p == lease.Token {
			continue // covered by the fix above
		}
		if hasLease && !held && lease.Holder != "" && !lease.State.Terminal() && p == lease.Token {
			continue // the dead rotation's: the next rotation removes it
		}
		what := fmt.Sprintf("AWSPENDING is on version %s but no rotation is running for it: the next rotation will refuse to start", p)
		if p == current {
			what = fmt.Sprintf("AWSPENDING is still on version %s, which is AWSCURRENT, and no rotation is running", p)
		}
		add(sevStuck, what, removePendingCmd(arn, p))
	}

	if last != nil && !running {
		switch ledger.State(last.Outcome) {
		case ledger.RolledBack:
			add(sevWarning, fmt.Sprintf("the last rotation (#%d at %s) rolled back after %s; the secret and database are as before it",
				last.Rotation, fmtTime(last.Time), orDash(last.ErrorClass)), "see `secretctl history "+arn+"` for the failing step")
		case ledger.Abandoned:
			add(sevWarning, fmt.Sprintf("the last rotation (#%d at %s) was abandoned: AWSCURRENT had been moved by someone else", last.Rotation, fmtTime(last.Time)),
				"find out who moved AWSCURRENT (CloudTrail UpdateSecretVersionStage), then `secretctl rotate "+arn+" --wait`")
		case ledger.Finished:
			if current != "" && current != last.Version {
				add(sevWarning, fmt.Sprintf("AWSCURRENT (%s) is not the version the last rotation (#%d) made (%s): it was moved outside secretsaga", current, last.Rotation, last.Version))
			}
		}
	}

	r.Health = "OK"
	for _, p := range r.Problems {
		switch {
		case p.Severity == sevStuck:
			r.Health = "STUCK"
		case p.Severity == sevWarning && r.Health == "OK":
			r.Health = "WARNING"
		case p.Severity == sevInfo && running && r.Health == "OK":
			r.Health = "ROTATING"
		}
	}
	return r
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printStatus(e *env, r statusReport) {
	w := e.stdout
	kv := newTable(w)
	kv.row("Secret:", r.Secret)
	kv.row("ARN:", r.ARN)
	kv.row("Health:", r.Health)
	if r.DeletedDate != nil {
		kv.row("Deleted:", fmtTime(*r.DeletedDate))
	}
	kv.flush()

	fmt.Fprintln(w, "\nVersions:")
	vt := newTable(w, "  VERSION", "STAGES", "CREATED")
	for _, v := range r.Versions {
		created := "-"
		if v.Created != nil {
			created = fmtTime(*v.Created)
		}
		vt.row("  "+v.ID, strings.Join(v.Stages, ","), created)
	}
	vt.flush()

	fmt.Fprintln(w, "\nLease:")
	if r.Lease == nil {
		fmt.Fprintln(w, "  none (never rotated by secretsaga)")
	} else {
		l := r.Lease
		lt := newTable(w)
		holder := "none (free)"
		if l.Holder != "" {
			holder = l.Holder
			if l.HolderStatus != "" {
				holder += " (" + l.HolderStatus + ")"
			}
		}
		lt.row("  holder:", holder)
		lt.row("  fencing:", fmt.Sprint(l.Fencing))
		lt.row("  state:", l.State)
		held := "no"
		switch {
		case l.Held && l.Until == nil && l.Repair != nil:
			held = "yes, until the repair function heals it (or an operator releases it)"
		case l.Held && l.Until == nil:
			held = "yes, until an operator releases it"
		case l.Held:
			held = "yes, until " + fmtTime(*l.Until)
		case l.Expired:
			held = "no, expired at " + fmtTime(*l.Until)
		}
		lt.row("  held:", held)
		lt.row("  version:", l.Token)
		if l.UpdatedAt != nil {
			lt.row("  updated:", fmtTime(*l.UpdatedAt))
		}
		if rr := l.Repair; rr != nil {
			last := "none yet"
			if rr.LastAttempt != nil {
				last = fmtTime(*rr.LastAttempt)
			}
			lt.row("  repair:", fmt.Sprintf("queued since %s; %d attempts, the last %s", fmtTime(rr.Since), rr.Attempts, last))
			if rr.Note != "" {
				lt.row("  repair note:", rr.Note)
			}
			lt.row("  repair next:", fmt.Sprintf("about %s; a person is called by %s if not healed (default policy)", fmtTime(rr.NextAttempt), fmtTime(rr.AlertAt)))
		}
		lt.flush()
	}

	if len(r.LoginLocks) > 0 {
		fmt.Fprintln(w, "\nLogin locks:")
		lt := newTable(w)
		for _, lk := range r.LoginLocks {
			who := "free"
			switch {
			case lk.Held && lk.Secret == r.ARN:
				who = fmt.Sprintf("held by this secret's rotation #%d (%s)", lk.Fencing, lk.State)
			case lk.Held:
				who = fmt.Sprintf("held by secret %s, rotation #%d (execution %s, %s)", lk.Secret, lk.Fencing, executionName(lk.Holder), lk.State)
			case lk.Secret != r.ARN:
				who = "free (last locked by secret " + lk.Secret + ")"
			}
			lt.row("  "+lk.Login, who)
		}
		lt.flush()
	}

	fmt.Fprintln(w, "\nLast rotation:")
	if r.LastRotation == nil {
		fmt.Fprintln(w, "  none")
	} else {
		printRotation(w, r.LastRotation)
		if r.LastSuccessful != nil && r.LastSuccessful != r.LastRotation {
			fmt.Fprintln(w, "\nLast successful rotation:")
			printRotation(w, r.LastSuccessful)
		}
	}

	fmt.Fprintln(w, "\nProblems:")
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for i, p := range r.Problems {
		fmt.Fprintf(w, "  %d. [%s] %s\n", i+1, p.Severity, p.What)
		for _, f := range p.Fix {
			fmt.Fprintf(w, "     fix: %s\n", f)
		}
	}
}

func printRotation(w interface{ Write([]byte) (int, error) }, rr *rotationReport) {
	t := newTable(w)
	t.row("  rotation:", fmt.Sprintf("#%d", rr.Rotation))
	t.row("  version:", rr.Version)
	t.row("  outcome:", rr.Outcome)
	t.row("  time:", fmtTime(rr.Time))
	if rr.ErrorClass != "" {
		t.row("  error:", rr.ErrorClass)
	}
	if rr.Detail != "" {
		t.row("  detail:", rr.Detail)
	}
	t.flush()
}
