package cli

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/ledger"
)

var complianceCmd = &command{
	name: "compliance", args: "",
	short: "check every secret's last successful rotation against a maximum age",
	long: `For every secret (ListSecrets), finds the last successful rotation (a FINISHED
journal record) and reports a breach when it is older than --max-age, when the
secret was never rotated by secretsaga, or when a rotation after it failed
(ROLLED_BACK, COMPENSATION_FAILED or ABANDONED). Exit status 3 on any breach.

Durations accept a d (day) and w (week) unit: 90d, 2w, 36h.`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		maxAge := fs.String("max-age", "90d", "the longest allowed time since the last successful rotation")
		prefix := fs.String("name-prefix", "", "only secrets whose name starts with this `prefix`")
		return func(e *env, pos []string) int {
			err := noArgs(pos)
			var d time.Duration
			if err == nil {
				if d, err = parseDuration(*maxAge); err != nil {
					err = usagef("--max-age: %v", err)
				} else if d == 0 {
					err = usagef("--max-age must be positive")
				}
			}
			if err == nil {
				err = e.compliance(d, *maxAge, *prefix)
			}
			if errors.Is(err, errBreach) {
				return ExitBreach
			}
			if err != nil {
				return e.fail("compliance", err)
			}
			return ExitOK
		}
	},
}

type complianceRow struct {
	Secret         string     `json:"secret"`
	ARN            string     `json:"arn"`
	LastRotated    *time.Time `json:"lastRotated,omitempty"`
	AgeSeconds     *int64     `json:"ageSeconds,omitempty"`
	LastOutcome    string     `json:"lastOutcome,omitempty"`
	LastOutcomeAt  *time.Time `json:"lastOutcomeAt,omitempty"`
	Compliant      bool       `json:"compliant"`
	Reason         string     `json:"reason,omitempty"`
	age            time.Duration
	hasLastRotated bool
}

type complianceReport struct {
	MaxAge   string          `json:"maxAge"`
	Checked  time.Time       `json:"checked"`
	Secrets  []complianceRow `json:"secrets"`
	Breaches int             `json:"breaches"`
}

// assess decides one secret's compliance from its journal.
func assess(name, arn string, hist []ledger.Record, now time.Time, maxAge time.Duration) complianceRow {
	row := complianceRow{Secret: name, ARN: arn, Compliant: true}
	var lastOK, lastEnd *ledger.Record
	for i := range hist {
		r := &hist[i]
		if !r.State.Terminal() {
			continue
		}
		lastEnd = r
		if r.State == ledger.Finished {
			lastOK = r
		}
	}
	if lastEnd != nil {
		row.LastOutcome = string(lastEnd.State)
		row.LastOutcomeAt = timePtr(lastEnd.Time())
	}
	if lastOK != nil {
		row.hasLastRotated = true
		row.LastRotated = timePtr(lastOK.Time())
		row.age = now.Sub(lastOK.Time())
		secs := int64(row.age / time.Second)
		row.AgeSeconds = &secs
	}
	switch {
	case lastOK == nil && lastEnd == nil:
		row.Compliant, row.Reason = false, "never rotated"
	case lastOK == nil:
		row.Compliant, row.Reason = false, fmt.Sprintf("never rotated successfully (last rotation %s)", lastEnd.State)
	case lastEnd.State != ledger.Finished:
		row.Compliant, row.Reason = false, fmt.Sprintf("last rotation failed: %s at %s", lastEnd.State, fmtTime(lastEnd.Time()))
		if lastEnd.ErrorClass != "" {
			row.Reason += " (" + lastEnd.ErrorClass + ")"
		}
	case row.age > maxAge:
		row.Compliant, row.Reason = false, fmt.Sprintf("last rotated %s ago, more than %s", fmtAge(row.age), fmtAge(maxAge))
	}
	return row
}

func (e *env) compliance(maxAge time.Duration, maxAgeText, prefix string) error {
	if err := e.needSM(); err != nil {
		return err
	}
	if err := e.needDB(); err != nil {
		return err
	}
	in := &sm.ListSecretsInput{}
	if prefix != "" {
		in.Filters = []smtypes.Filter{{Key: smtypes.FilterNameStringTypeName, Values: []string{prefix}}}
	}
	type sec struct{ name, arn string }
	var secrets []sec
	p := sm.NewListSecretsPaginator(e.deps.SM, in)
	for p.HasMorePages() {
		pg, err := p.NextPage(e.ctx)
		if err != nil {
			return fmt.Errorf("list secrets: %w", err)
		}
		for _, s := range pg.SecretList {
			name := aws.ToString(s.Name)
			if prefix != "" && !strings.HasPrefix(name, prefix) {
				continue // the name filter matches words, not only prefixes
			}
			secrets = append(secrets, sec{name, aws.ToString(s.ARN)})
		}
	}
	slices.SortFunc(secrets, func(a, b sec) int { return strings.Compare(a.name, b.name) })
	now := e.deps.Now()
	rep := complianceReport{MaxAge: maxAgeText, Checked: now.UTC(), Secrets: []complianceRow{}}
	l := e.ledger()
	for _, s := range secrets {
		hist, err := l.History(e.ctx, s.arn)
		if err != nil {
			return err
		}
		row := assess(s.name, s.arn, hist, now, maxAge)
		if !row.Compliant {
			rep.Breaches++
		}
		rep.Secrets = append(rep.Secrets, row)
	}
	if e.json() {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		t := newTable(e.stdout, "SECRET", "LAST ROTATED", "AGE", "LAST OUTCOME", "STATUS", "REASON")
		for _, r := range rep.Secrets {
			last, age := "never", "-"
			if r.hasLastRotated {
				last, age = fmtTime(*r.LastRotated), fmtAge(r.age)
			}
			status := "ok"
			if !r.Compliant {
				status = "BREACH"
			}
			t.row(r.Secret, last, age, r.LastOutcome, status, r.Reason)
		}
		t.flush()
		fmt.Fprintf(e.stdout, "\n%d secret(s), %d breach(es) of max age %s\n", len(rep.Secrets), rep.Breaches, maxAgeText)
	}
	if rep.Breaches > 0 {
		return errBreach
	}
	return nil
}
