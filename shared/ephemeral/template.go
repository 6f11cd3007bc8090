package ephemeral

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

// Template is a parsed template secret: where logins are made, what they
// are given, and who makes them.
type Template struct {
	ARN          string
	Value        *secret.Value // engine, host, port, dbname, tls, masterarn
	Role         string
	Default, Max time.Duration
	Tags         map[string]string
	Engine       target.Engine
	Dyn          target.Dynamic
}

// extra are the template's fields that the database-secret structure does
// not have.
type extra struct {
	Role       *string `json:"role"`
	DefaultTTL *string `json:"default_ttl"`
	MaxTTL     *string `json:"max_ttl"`
}

// inputErr is bad input: the message says what is wrong and how to fix it.
func inputErr(id, step, reason string, err error) error {
	return &faults.InputError{Detail: faults.Detail{SecretID: id, Step: step, Reason: reason, Err: err}}
}

// ParseTemplate reads a template's value (tags as DescribeSecret gave them);
// every problem is an InputError naming the field.
func ParseTemplate(id, arn, value string, tags map[string]string, engines *target.Registry) (*Template, error) {
	if _, ok := tags[TagTemplate]; !ok {
		return nil, inputErr(id, StepIssue, "the secret is not a template for short-lived logins: tag it "+TagTemplate+"=<group> (the group the functions' IAM policies allow)", nil)
	}
	v, err := secret.Parse(value)
	if err != nil {
		return nil, inputErr(id, StepIssue, "the template's value does not parse", err)
	}
	var x extra
	if err := json.Unmarshal([]byte(value), &x); err != nil {
		return nil, inputErr(id, StepIssue, `the template's "role", "default_ttl" and "max_ttl" must be JSON strings`, nil)
	}
	t := &Template{ARN: arn, Value: v, Tags: tags, Default: DefaultTTL, Max: DefaultMaxTTL}
	for _, f := range []struct{ name, val string }{{secret.FieldEngine, v.Engine}, {secret.FieldHost, v.Host}} {
		if strings.TrimSpace(f.val) == "" {
			return nil, inputErr(id, StepIssue, fmt.Sprintf("the template's %q field is missing or empty; add it", f.name), nil)
		}
	}
	if v.MasterARN == "" {
		return nil, inputErr(id, StepIssue, `the template has no "masterarn": name the secret of a login that may create users (as for the alternating-users strategy)`, nil)
	}
	if x.Role == nil || strings.TrimSpace(*x.Role) == "" {
		return nil, inputErr(id, StepIssue, `the template has no "role": name the role (PostgreSQL, MariaDB) or ACL user (Redis) whose privileges the logins get`, nil)
	}
	t.Role = *x.Role
	if x.MaxTTL != nil {
		if t.Max, err = parseTTL(*x.MaxTTL); err != nil || t.Max > MaxTTLCeiling {
			return nil, inputErr(id, StepIssue, fmt.Sprintf(`the template's "max_ttl" must be a duration from %v to %v, like "1h"`, MinTTL, MaxTTLCeiling), nil)
		}
	}
	if x.DefaultTTL != nil {
		if t.Default, err = parseTTL(*x.DefaultTTL); err != nil {
			return nil, inputErr(id, StepIssue, `the template's "default_ttl" must be a duration like "15m"`, nil)
		}
	}
	if t.Default > t.Max {
		t.Default = t.Max
	}
	if t.Engine, err = engines.Lookup(v.Engine); err != nil {
		return nil, inputErr(id, StepIssue, "the template's engine", err)
	}
	if t.Dyn, err = target.AsDynamic(t.Engine); err != nil {
		return nil, inputErr(id, StepIssue, "the template's engine cannot issue logins", err)
	}
	if v.Port == 0 {
		v.Port = t.Engine.DefaultPort()
	}
	return t, nil
}

// parseTTL reads a Go duration of at least MinTTL.
func parseTTL(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	if d < MinTTL {
		return 0, fmt.Errorf("%v is shorter than %v", d, MinTTL)
	}
	return d, nil
}

// TTLs works out a lease's TTL and max TTL from the caller's and the
// template's; asking for more than the template allows is an InputError.
func (t *Template) TTLs(id, ttl, maxTTL string) (time.Duration, time.Duration, error) {
	lease, max := t.Default, t.Max
	if maxTTL != "" {
		m, err := parseTTL(maxTTL)
		if err != nil {
			return 0, 0, inputErr(id, StepIssue, fmt.Sprintf("MaxTTL must be a duration of at least %v, like \"1h\"", MinTTL), nil)
		}
		if m > t.Max {
			return 0, 0, inputErr(id, StepIssue, fmt.Sprintf("MaxTTL %v is above the template's max_ttl %v; ask for at most %v", m, t.Max, t.Max), nil)
		}
		max = m
	}
	if ttl != "" {
		d, err := parseTTL(ttl)
		if err != nil {
			return 0, 0, inputErr(id, StepIssue, fmt.Sprintf("TTL must be a duration of at least %v, like \"15m\"", MinTTL), nil)
		}
		lease = d
	}
	if lease > max {
		return 0, 0, inputErr(id, StepIssue, fmt.Sprintf("TTL %v is above the max TTL %v; ask for at most %v (renew later, up to the max)", lease, max, max), nil)
	}
	return lease, max, nil
}

// template reads and parses the template secret.
func (s *Service) template(ctx context.Context, id string) (*Template, error) {
	d, err := s.Secrets.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: &id})
	if err != nil {
		if secretstore.IsNotFound(err) {
			return nil, inputErr(id, StepIssue, "no template secret of that name or ARN; check the name (secretctl lease <template>)", nil)
		}
		return nil, faults.Classify(err, id, StepIssue)
	}
	if d.DeletedDate != nil {
		return nil, inputErr(id, StepIssue, "the template secret is scheduled for deletion; restore it first", nil)
	}
	tags := map[string]string{}
	for _, t := range d.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	v, err := s.Secrets.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: d.ARN})
	if err != nil {
		return nil, faults.Classify(err, id, StepIssue)
	}
	return ParseTemplate(id, aws.ToString(d.ARN), aws.ToString(v.SecretString), tags, s.Engines)
}

// master reads the master secret and returns its login; it must be on the
// login's server.
func (s *Service) master(ctx context.Context, id, step, masterARN string, engine target.Engine, host string, port int) (target.Credential, error) {
	out, err := s.Secrets.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: &masterARN})
	if err != nil {
		if secretstore.IsNotFound(err) {
			return target.Credential{}, inputErr(id, step, "the master secret "+masterARN+" does not exist; restore it or correct the template's masterarn", nil)
		}
		return target.Credential{}, faults.Classify(err, id, step)
	}
	v, err := secret.Parse(aws.ToString(out.SecretString))
	if err == nil {
		err = v.Validate(engine.DefaultPort())
	}
	if err != nil {
		return target.Credential{}, inputErr(id, step, "the master secret "+masterARN+" is not a database secret", err)
	}
	if !strings.EqualFold(v.Host, host) || v.Port != port {
		return target.Credential{}, inputErr(id, step, fmt.Sprintf("the master secret logs in to %s:%d, not to the template's %s:%d; name a master of the same server", v.Host, v.Port, host, port), nil)
	}
	return target.FromValue(v), nil
}

// targetErr maps an engine failure onto the taxonomy.
func targetErr(err error, id, step, what string) error {
	var wrongProtocol *target.WrongProtocolError
	var tlsErr *target.TLSError
	d := faults.Detail{SecretID: id, Step: step, Reason: what, Err: err}
	switch {
	case err == nil:
		return nil
	case errors.As(err, &wrongProtocol), errors.As(err, &tlsErr):
		return &faults.InputError{Detail: d}
	case errors.Is(err, target.ErrRoleNotFound):
		d.Reason = "the template's role does not exist on the database; create it or correct the template's \"role\""
		return &faults.InputError{Detail: d}
	case errors.Is(err, target.ErrUnreachable):
		d.Reason = what + ": the database is unreachable"
		return &faults.RetryableError{Detail: d}
	case errors.Is(err, target.ErrAuthFailed):
		d.Reason = what + ": the database refused the master's login (is the master secret current?)"
		return &faults.RetryableError{Detail: d}
	case errors.Is(err, target.ErrInvalid):
		d.Reason = what + ": the database refused the request"
		return &faults.InputError{Detail: d}
	}
	return faults.Classify(err, id, step)
}
