package ephemeral

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/shared/events"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/target"
)

// SweepInput is the sweeper's (scheduled) input.
type SweepInput struct {
	// SkipCrossCheck skips reading the databases' user lists (the ledger
	// alone is swept).
	SkipCrossCheck bool `json:",omitempty"`
}

// UnmarshalJSON: see IssueInput's.
func (in *SweepInput) UnmarshalJSON(b []byte) error {
	type plain SweepInput
	return faults.DecodeInput(b, (*plain)(in), StepSweep, "the sweeper's input")
}

// Sweep revokes every lease whose revocation is due (expired, an issue that
// died half way, a revocation that failed earlier: the ledger's sparse
// index), then cross-checks each template's database: a login with
// secretsaga's prefix whose lease is revoked or expired is revoked; one no
// lease names is announced and left alone. A lease whose revocation fails
// again stays due (with backoff) and alerts after AlertAfter attempts; the
// sweep itself fails only when it cannot read the ledger.
func (s *Service) Sweep(ctx context.Context, in SweepInput) (SweepOutput, error) {
	limit := s.SweepLimit
	if limit <= 0 {
		limit = 200
	}
	now := s.now()
	due, err := s.Ledger.DueEphemeral(ctx, now, limit)
	if err != nil {
		return SweepOutput{}, faults.Classify(err, "", StepSweep)
	}
	out := SweepOutput{Due: len(due)}
	for _, l := range due {
		if ctx.Err() != nil {
			break
		}
		r, err := s.Revoke(ctx, LeaseInput{LeaseId: l.ID, Reason: s.sweepReason(l)})
		switch {
		case err != nil:
			out.Failed = append(out.Failed, l.ID)
		case r.Revoked:
			out.Revoked = append(out.Revoked, l.ID)
		}
	}
	if !in.SkipCrossCheck {
		s.crossCheck(ctx, &out)
	}
	if len(out.Revoked)+len(out.Failed)+len(out.Orphans)+len(out.Unaccounted) > 0 {
		s.log().Info("sweep", "due", out.Due, "revoked", len(out.Revoked), "failed", len(out.Failed),
			"orphans", len(out.Orphans), "unaccounted", len(out.Unaccounted), "crossChecked", out.CrossChecked)
	}
	return out, nil
}

func (s *Service) sweepReason(l ledger.EphemeralLease) string {
	switch l.State {
	case ledger.Issuing:
		return "swept: the issue did not finish"
	case ledger.Revoking:
		return "swept: an earlier revocation did not finish"
	}
	return "swept: expired"
}

// database is one server the cross-check lists, with the master to list it.
type database struct {
	engine     string
	host       string
	port       int
	masterARN  string
	templateID string
}

// crossCheck reads the user list of every template's database.
func (s *Service) crossCheck(ctx context.Context, out *SweepOutput) {
	dbs, err := s.templateDatabases(ctx)
	if err != nil {
		s.log().Warn("cross-check skipped: the templates could not be listed", "error", err.Error())
		out.Unchecked = append(out.Unchecked, "(templates not listed)")
		return
	}
	for _, db := range dbs {
		if ctx.Err() != nil {
			return
		}
		engine, err := s.Engines.Lookup(db.engine)
		if err != nil {
			continue
		}
		dyn, err := target.AsDynamic(engine)
		if err != nil {
			continue
		}
		master, err := s.master(ctx, db.templateID, StepSweep, db.masterARN, engine, db.host, db.port)
		if err == nil {
			var users []string
			users, err = dyn.ListUsers(ctx, target.ListUsersRequest{Master: master, Prefix: target.EphemeralPrefix})
			if err == nil {
				out.CrossChecked++
				s.checkUsers(ctx, db, dyn, master, users, out)
				continue
			}
		}
		out.Unchecked = append(out.Unchecked, db.templateID)
		s.log().Warn("cross-check: database not listed", "template", db.templateID, "error", err.Error())
	}
}

func (s *Service) checkUsers(ctx context.Context, db database, dyn target.Dynamic, master target.Credential, users []string, out *SweepOutput) {
	now := s.now()
	for _, u := range users {
		if !target.IsEphemeralName(u) {
			continue
		}
		l, ok, err := s.Ledger.GetEphemeral(ctx, u)
		if err != nil {
			continue
		}
		switch {
		case !ok || !strings.EqualFold(l.Host, db.host) || l.Port != db.port:
			// Not ours to drop (invariant 6): another deployment's, or
			// made by hand with our prefix.
			out.Unaccounted = append(out.Unaccounted, fmt.Sprintf("%s@%s:%d", u, db.host, db.port))
			s.announce(ctx, events.EphemeralUnaccounted, "warning",
				ledger.EphemeralLease{ID: u, Template: db.templateID, Host: db.host, Port: db.port}, "",
				"a login named with secretsaga's prefix exists on "+db.host+" but no lease in the ledger names it; drop it by hand if no one knows it")
		case l.State == ledger.Revoked:
			// Revoked, yet there: drop it again and journal that.
			if _, err := dyn.DeleteUser(ctx, target.DeleteUserRequest{Master: master, Username: u, Role: l.Role}); err != nil {
				out.Failed = append(out.Failed, u)
				continue
			}
			_ = s.Ledger.Transition(ctx, &l, ledger.EphemeralChange{Record: ledger.EphemeralRecord{State: ledger.Revoked, Actor: s.Actor, Detail: "cross-check: the login was still there; dropped again"}})
			out.Orphans = append(out.Orphans, u)
		case !now.Before(l.NotAfterTime()):
			// Expired but not due in the index (an index read that lagged,
			// or a limit): revoke it now.
			if _, err := s.Revoke(ctx, LeaseInput{LeaseId: u, Reason: "swept: cross-check found it expired"}); err != nil {
				out.Failed = append(out.Failed, u)
				continue
			}
			out.Orphans = append(out.Orphans, u)
		}
	}
}

// templateDatabases lists the templates (secrets tagged TagTemplate) and
// returns their databases, each once.
func (s *Service) templateDatabases(ctx context.Context) ([]database, error) {
	var dbs []database
	seen := map[string]bool{}
	in := &sm.ListSecretsInput{Filters: []smtypes.Filter{{Key: smtypes.FilterNameStringTypeTagKey, Values: []string{TagTemplate}}}}
	for {
		page, err := s.Secrets.ListSecrets(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, e := range page.SecretList {
			tags := map[string]string{}
			for _, t := range e.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			if _, ok := tags[TagTemplate]; !ok || e.DeletedDate != nil || strings.HasPrefix(aws.ToString(e.Name), SecretPrefix) {
				continue
			}
			arn := aws.ToString(e.ARN)
			v, err := s.Secrets.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: &arn})
			if err != nil {
				continue
			}
			tpl, err := ParseTemplate(arn, arn, aws.ToString(v.SecretString), tags, s.Engines)
			if err != nil {
				continue
			}
			key := fmt.Sprintf("%s|%s|%d", tpl.Engine.Name(), strings.ToLower(tpl.Value.Host), tpl.Value.Port)
			if seen[key] {
				continue
			}
			seen[key] = true
			dbs = append(dbs, database{engine: tpl.Engine.Name(), host: tpl.Value.Host, port: tpl.Value.Port, masterARN: tpl.Value.MasterARN, templateID: arn})
		}
		if page.NextToken == nil {
			return dbs, nil
		}
		in.NextToken = page.NextToken
	}
}
