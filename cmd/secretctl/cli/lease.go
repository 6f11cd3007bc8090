package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/secretsaga/secretsaga/shared/ephemeral"
	"github.com/secretsaga/secretsaga/shared/faults"
)

// EnvEphemeralStateMachineArn is the short-lived login state machine
// (secretctl lease).
const EnvEphemeralStateMachineArn = "SECRETSAGA_EPHEMERAL_STATE_MACHINE_ARN"

// Ephemeral is what the lease commands need of shared/ephemeral
// (*ephemeral.Service, made for the ledger table in use): secretctl
// renews, revokes and lists leases itself, with the caller's credentials,
// and issues through the state machine (which then waits out the lease and
// revokes it).
type Ephemeral interface {
	Status(context.Context, ephemeral.LeaseInput) (ephemeral.Lease, error)
	Renew(context.Context, ephemeral.RenewInput) (ephemeral.Lease, error)
	Revoke(context.Context, ephemeral.LeaseInput) (ephemeral.Lease, error)
	List(context.Context) ([]ephemeral.Lease, error)
}

func (e *env) ephemeral() (Ephemeral, error) {
	if e.deps.Ephemeral == nil {
		return nil, e.noClient("short-lived login")
	}
	return e.deps.Ephemeral(e.g.ledgerTable)
}

var leaseCmd = &command{
	name: "lease", args: "<template-secret>",
	short: "issue a short-lived database login from a template (--output env|json prints it)",
	long: `Starts the short-lived login state machine for a template secret and waits
until the login is issued: a login of its own, with the template's role,
that secretsaga revokes when --ttl has passed (renewable with secretctl renew,
up to --max-ttl). It prints the lease, its expiry and the secret that holds
the login; with --output env it prints export lines for a shell (DB_HOST,
DB_PORT, DB_USER, DB_PASSWORD, DB_NAME, SECRETSAGA_LEASE and the engine's own
variables: PGHOST..., MYSQL_HOST..., REDISCLI_AUTH), with --output json the
login as JSON. Only --output env and json print the password.

Needs --ephemeral-state-machine-arn (or SECRETSAGA_EPHEMERAL_STATE_MACHINE_ARN).`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		ttl := fs.String("ttl", "", "how long the login lives (default: the template's default_ttl)")
		maxTTL := fs.String("max-ttl", "", "how long renewals may keep it (at most the template's max_ttl)")
		owner := fs.String("owner", "", "who the login is for (default: $USER)")
		arn := fs.String("ephemeral-state-machine-arn", "", "the short-lived login state machine's ARN (env "+EnvEphemeralStateMachineArn+")")
		poll := fs.Duration("poll-interval", time.Second, "how often to look for the issued login")
		timeout := fs.Duration("timeout", 3*time.Minute, "how long to wait for the login")
		return func(e *env, pos []string) int {
			tpl, err := exactlyOne(pos, "template secret")
			if err == nil && *arn == "" {
				*arn = e.deps.Getenv(EnvEphemeralStateMachineArn)
			}
			if err == nil && *arn == "" {
				err = usagef("no state machine: set --ephemeral-state-machine-arn or %s", EnvEphemeralStateMachineArn)
			}
			if err == nil && (*poll <= 0 || *timeout <= 0) {
				err = usagef("--poll-interval and --timeout must be positive")
			}
			if err == nil {
				who := *owner
				if who == "" {
					who = e.deps.Getenv("USER")
				}
				err = e.lease(*arn, tpl, *ttl, *maxTTL, who, *poll, *timeout)
			}
			if err != nil {
				return e.fail("lease", err)
			}
			return ExitOK
		}
	},
}

var leasesCmd = &command{
	name: "leases", args: "",
	short: "list the open short-lived logins (issuing, issued, being revoked)",
	long:  `Lists every lease the ledger holds open: its login, state, template, owner and expiry.`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		return func(e *env, pos []string) int {
			if len(pos) > 0 {
				return e.fail("leases", usagef("leases takes no arguments"))
			}
			if err := e.leases(); err != nil {
				return e.fail("leases", err)
			}
			return ExitOK
		}
	},
}

var revokeCmd = &command{
	name: "revoke", args: "<lease>",
	short: "revoke a short-lived login now (its sessions ended, the login dropped, its secret deleted)",
	long: `Revokes a lease now: journals REVOKING, ends the login's sessions, drops it,
deletes its secret and journals REVOKED. Revoking a revoked lease does nothing.
The lease's execution finds it revoked when it wakes and ends.`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		return func(e *env, pos []string) int {
			id, err := exactlyOne(pos, "lease")
			if err == nil {
				err = e.revoke(id)
			}
			if err != nil {
				return e.fail("revoke", err)
			}
			return ExitOK
		}
	},
}

var renewCmd = &command{
	name: "renew", args: "<lease>",
	short: "move a short-lived login's expiry to --ttl from now (up to its max)",
	long: `Renews a lease: its expiry becomes --ttl from now, at most the max TTL it was
issued with (asking for more is an error that says the latest allowed). On
PostgreSQL the login's VALID UNTIL moves too.`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		ttl := fs.String("ttl", "15m", "the new time to live, from now")
		return func(e *env, pos []string) int {
			id, err := exactlyOne(pos, "lease")
			if err == nil {
				err = e.renew(id, *ttl)
			}
			if err != nil {
				return e.fail("renew", err)
			}
			return ExitOK
		}
	},
}

// lease starts the state machine and waits for the issued login.
func (e *env) lease(arn, tpl, ttl, maxTTL, owner string, poll, timeout time.Duration) error {
	if err := e.needSFN(); err != nil {
		return err
	}
	if err := e.needSM(); err != nil {
		return err
	}
	eph, err := e.ephemeral()
	if err != nil {
		return err
	}
	token := e.deps.NewToken()
	leaseID, err := ephemeral.LeaseName(token)
	if err != nil {
		return err
	}
	input, _ := json.Marshal(map[string]string{"TemplateId": tpl, "TTL": ttl, "MaxTTL": maxTTL, "Owner": owner, "LeaseId": token})
	out, err := e.deps.SFN.StartExecution(e.ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(arn), Name: aws.String("secretctl-lease-" + token), Input: aws.String(string(input)),
	})
	if err != nil {
		return fmt.Errorf("start execution: %w", err)
	}
	exec := aws.ToString(out.ExecutionArn)
	deadline := e.deps.Now().Add(timeout)
	for {
		l, err := eph.Status(e.ctx, ephemeral.LeaseInput{LeaseId: leaseID})
		var ie *faults.InputError
		switch {
		case err == nil && l.State == "ISSUED":
			return e.printLease(l, exec)
		case err == nil && l.Revoked:
			return fmt.Errorf("lease %s was revoked before it could be read (execution %s)", leaseID, exec)
		case err != nil && !errors.As(err, &ie):
			return err
		}
		d, derr := e.deps.SFN.DescribeExecution(e.ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(exec)})
		if derr != nil {
			return fmt.Errorf("describe execution: %w", derr)
		}
		if d.Status != sfntypes.ExecutionStatusRunning {
			return fmt.Errorf("execution %s %s: %s: %s", exec, d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
		}
		if !e.deps.Now().Before(deadline) {
			return fmt.Errorf("lease %s not issued within %v (execution %s is still running)", leaseID, timeout, exec)
		}
		if err := e.deps.Sleep(e.ctx, poll); err != nil {
			return err
		}
	}
}

// login is an issued login's secret value.
type login struct {
	Engine   string          `json:"engine"`
	Host     string          `json:"host"`
	Port     json.RawMessage `json:"port"`
	Username string          `json:"username"`
	Password string          `json:"password"`
	DBName   string          `json:"dbname,omitempty"`
}

func (e *env) printLease(l ephemeral.Lease, exec string) error {
	if e.g.output == "table" {
		t := newTable(e.stdout)
		t.row("lease", l.LeaseId)
		t.row("login", l.Username+"@"+l.Host+":"+strconv.Itoa(l.Port))
		t.row("role", l.Role)
		t.row("expires", l.NotAfter)
		t.row("max", l.MaxNotAfter)
		t.row("secret", l.SecretArn)
		t.row("execution", exec)
		t.flush()
		fmt.Fprintln(e.stdout, "The password is in the secret; --output env or json prints it.")
		return nil
	}
	out, err := e.deps.SM.GetSecretValue(e.ctx, &sm.GetSecretValueInput{SecretId: aws.String(l.SecretArn)})
	if err != nil {
		return fmt.Errorf("read the login's secret: %w", err)
	}
	raw := aws.ToString(out.SecretString)
	var v login
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return errors.New("the login's secret is not a database secret")
	}
	if e.g.output == "json" {
		return writeJSON(e.stdout, map[string]any{
			"lease": l.LeaseId, "engine": v.Engine, "host": v.Host, "port": l.Port, "username": v.Username,
			"password": v.Password, "dbname": v.DBName, "notAfter": l.NotAfter, "maxNotAfter": l.MaxNotAfter,
			"secretArn": l.SecretArn, "executionArn": exec,
		})
	}
	port := strconv.Itoa(l.Port)
	vars := [][2]string{
		{"SECRETSAGA_LEASE", l.LeaseId}, {"SECRETSAGA_LEASE_EXPIRES", l.NotAfter},
		{"DB_HOST", v.Host}, {"DB_PORT", port}, {"DB_USER", v.Username}, {"DB_PASSWORD", v.Password}, {"DB_NAME", v.DBName},
	}
	switch l.Engine {
	case "postgres":
		vars = append(vars, [][2]string{{"PGHOST", v.Host}, {"PGPORT", port}, {"PGUSER", v.Username}, {"PGPASSWORD", v.Password}, {"PGDATABASE", v.DBName}}...)
	case "mysql":
		vars = append(vars, [][2]string{{"MYSQL_HOST", v.Host}, {"MYSQL_TCP_PORT", port}, {"MYSQL_PWD", v.Password}}...)
	case "redis":
		vars = append(vars, [2]string{"REDISCLI_AUTH", v.Password})
	}
	for _, kv := range vars {
		fmt.Fprintf(e.stdout, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (e *env) leases() error {
	eph, err := e.ephemeral()
	if err != nil {
		return err
	}
	ls, err := eph.List(e.ctx)
	if err != nil {
		return err
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].NotAfter < ls[j].NotAfter })
	if e.json() {
		if ls == nil {
			ls = []ephemeral.Lease{}
		}
		return writeJSON(e.stdout, ls)
	}
	t := newTable(e.stdout, "LEASE", "STATE", "ENGINE", "HOST", "ROLE", "OWNER", "EXPIRES", "TEMPLATE")
	for _, l := range ls {
		t.row(l.LeaseId, l.State, l.Engine, l.Host+":"+strconv.Itoa(l.Port), l.Role, l.Owner, l.NotAfter, l.Template)
	}
	t.flush()
	return nil
}

func (e *env) revoke(id string) error {
	eph, err := e.ephemeral()
	if err != nil {
		return err
	}
	l, err := eph.Revoke(e.ctx, ephemeral.LeaseInput{LeaseId: id, Reason: "revoked with secretctl by " + e.deps.Getenv("USER")})
	if err != nil {
		return err
	}
	if e.json() {
		return writeJSON(e.stdout, l)
	}
	fmt.Fprintf(e.stdout, "lease %s revoked: its sessions ended, login %s dropped, its secret deleted\n", l.LeaseId, l.Username)
	return nil
}

func (e *env) renew(id, ttl string) error {
	eph, err := e.ephemeral()
	if err != nil {
		return err
	}
	l, err := eph.Renew(e.ctx, ephemeral.RenewInput{LeaseId: id, TTL: ttl})
	if err != nil {
		return err
	}
	if e.json() {
		return writeJSON(e.stdout, l)
	}
	fmt.Fprintf(e.stdout, "lease %s renewed: expires %s (max %s)\n", l.LeaseId, l.NotAfter, l.MaxNotAfter)
	return nil
}
