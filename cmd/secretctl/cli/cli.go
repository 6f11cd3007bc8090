// Package cli is secretctl: the operator's view of secretsaga. Run is the
// whole program; package main only wires real AWS clients into Deps, so
// tests run every command in-process against fakes or local stand-ins.
//
// Only `get` and `lease --output env|json` print a secret value. Every other command reads metadata:
// version stages, the ledger's lease and journal, executions.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
	// ExitBreach: a compliance breach (compliance) or a stuck secret (status).
	ExitBreach = 3
)

// Environment variables that set flag defaults.
const (
	EnvLedgerTable     = "SECRETSAGA_LEDGER_TABLE"
	EnvStateMachineArn = "SECRETSAGA_STATE_MACHINE_ARN"
	// EnvFleetStateMachineArn is the fleet state machine (rotate --tag).
	EnvFleetStateMachineArn = "SECRETSAGA_FLEET_STATE_MACHINE_ARN"
	DefaultLedgerTable      = "secretsaga-ledger"
)

// SecretsManager is the part of *secretsmanager.Client secretctl uses.
type SecretsManager interface {
	DescribeSecret(context.Context, *sm.DescribeSecretInput, ...func(*sm.Options)) (*sm.DescribeSecretOutput, error)
	ListSecretVersionIds(context.Context, *sm.ListSecretVersionIdsInput, ...func(*sm.Options)) (*sm.ListSecretVersionIdsOutput, error)
	ListSecrets(context.Context, *sm.ListSecretsInput, ...func(*sm.Options)) (*sm.ListSecretsOutput, error)
	GetSecretValue(context.Context, *sm.GetSecretValueInput, ...func(*sm.Options)) (*sm.GetSecretValueOutput, error)
}

// DynamoDB is the part of *dynamodb.Client secretctl uses: reads of the
// ledger table only.
type DynamoDB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// StepFunctions is the part of *sfn.Client secretctl uses.
type StepFunctions interface {
	StartExecution(context.Context, *sfn.StartExecutionInput, ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
	GetExecutionHistory(context.Context, *sfn.GetExecutionHistoryInput, ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error)
}

// Deps are what Run needs from outside. Nil clients are reported as errors
// by the commands that need them (with ClientErr, if set, as the reason).
type Deps struct {
	SM  SecretsManager
	DB  DynamoDB
	SFN StepFunctions
	// ClientErr is why the clients could not be made (bad AWS config).
	ClientErr error
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// Sleep waits between polls (default: a timer honouring ctx).
	Sleep func(context.Context, time.Duration) error
	// NewToken makes a rotation's ClientRequestToken (default: a random UUID).
	NewToken func() string
	// Ephemeral makes the short-lived login service for the ledger table
	// in use (lease, leases, revoke, renew); nil: those commands report no
	// client.
	Ephemeral func(ledgerTable string) (Ephemeral, error)
}

func (d *Deps) defaults() {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Getenv == nil {
		d.Getenv = os.Getenv
	}
	if d.Sleep == nil {
		d.Sleep = func(ctx context.Context, dur time.Duration) error {
			t := time.NewTimer(dur)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if d.NewToken == nil {
		d.NewToken = newUUID
	}
}

// globals are the flags every command accepts.
type globals struct {
	output          string
	ledgerTable     string
	stateMachineArn string
	fleetArn        string
}

// env is one invocation.
type env struct {
	ctx            context.Context
	stdout, stderr io.Writer
	deps           Deps
	g              globals
}

type command struct {
	name, args, short string
	long              string
	flags             func(*flag.FlagSet) func(*env, []string) int
}

var commands []*command

func init() {
	commands = []*command{statusCmd, historyCmd, rotateCmd, rollbackCmd, auditCmd, complianceCmd, getCmd, consumersCmd,
		leaseCmd, leasesCmd, revokeCmd, renewCmd}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a bad command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// breach is a finding that makes the command exit 3 after its output.
var errBreach = errors.New("breach")

const mainUsage = `secretctl operates secretsaga, the saga that rotates AWS Secrets Manager
credentials: inspect a secret and its ledger, start rotations, audit.

Usage:
  secretctl [global flags] <command> [flags] [args]

Commands:
%s
Global flags (accepted before or after the command):
  --output table|json        output format (default table)
  --ledger-table NAME        the ledger's DynamoDB table
                             (env SECRETSAGA_LEDGER_TABLE, default secretsaga-ledger)
  --state-machine-arn ARN    the rotation state machine
                             (env SECRETSAGA_STATE_MACHINE_ARN)
  --fleet-state-machine-arn ARN
                             the fleet state machine (rotate --tag)
                             (env SECRETSAGA_FLEET_STATE_MACHINE_ARN)

AWS settings come from the usual SDK sources (AWS_PROFILE, AWS_REGION, ...).
Endpoints can be overridden per service with AWS_ENDPOINT_URL_SECRETS_MANAGER,
AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_SFN.

Exit codes: 0 ok, 1 error, 2 usage, 3 compliance breach or stuck secret.
Only "get" and "lease --output env|json" print a secret value.

Run "secretctl <command> --help" for a command's flags.
`

func mainHelp() string {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.short)
	}
	return fmt.Sprintf(mainUsage, b.String())
}

func addGlobals(fs *flag.FlagSet, g *globals, getenv func(string) string) {
	table := getenv(EnvLedgerTable)
	if table == "" {
		table = DefaultLedgerTable
	}
	fs.StringVar(&g.output, "output", "table", "output format: table or json")
	fs.StringVar(&g.ledgerTable, "ledger-table", table, "the ledger's DynamoDB table (env "+EnvLedgerTable+")")
	fs.StringVar(&g.stateMachineArn, "state-machine-arn", getenv(EnvStateMachineArn), "the rotation state machine's ARN (env "+EnvStateMachineArn+")")
	fs.StringVar(&g.fleetArn, "fleet-state-machine-arn", getenv(EnvFleetStateMachineArn), "the fleet state machine's ARN (env "+EnvFleetStateMachineArn+")")
}

// parseInterspersed parses flags wherever they stand among the positional
// arguments ("status mysecret --output json" works), as most CLIs do. "--"
// ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at the first non-flag, and consumes a lone "--".
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func flagDefaults(fs *flag.FlagSet, skip map[string]bool) string {
	var b strings.Builder
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !skip[f.Name] {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	for _, n := range names {
		f := fs.Lookup(n)
		name, usage := flag.UnquoteUsage(f)
		left := "  --" + f.Name
		if name != "" {
			left += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(&b, "%-28s %s\n", left, usage)
	}
	return b.String()
}

func commandHelp(c *command, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n", strings.TrimSpace("secretctl "+c.name+" [flags] "+c.args), strings.TrimSpace(c.long))
	if own := flagDefaults(fs, map[string]bool{"output": true, "ledger-table": true, "state-machine-arn": true, "fleet-state-machine-arn": true}); own != "" {
		fmt.Fprintf(&b, "\nFlags:\n%s", own)
	}
	b.WriteString("\nGlobal flags: --output table|json, --ledger-table, --state-machine-arn, --fleet-state-machine-arn (see secretctl --help).\n")
	return b.String()
}

// Run runs secretctl with args (without the program name) and returns the
// exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, deps Deps) int {
	deps.defaults()
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, deps: deps}

	// Global flags before the command.
	top := flag.NewFlagSet("secretctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	addGlobals(top, &e.g, deps.Getenv)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, mainHelp())
			return ExitOK
		}
		fmt.Fprintf(stderr, "secretctl: %v\nRun \"secretctl --help\" for usage.\n", err)
		return ExitUsage
	}
	rest := top.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, mainHelp())
		return ExitUsage
	}
	name := rest[0]
	if name == "help" {
		if len(rest) > 1 {
			if c := lookup(rest[1]); c != nil {
				fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
				addGlobals(fs, &e.g, deps.Getenv)
				c.flags(fs)
				fmt.Fprint(stdout, commandHelp(c, fs))
				return ExitOK
			}
			fmt.Fprintf(stderr, "secretctl: unknown command %q\nRun \"secretctl --help\" for usage.\n", rest[1])
			return ExitUsage
		}
		fmt.Fprint(stdout, mainHelp())
		return ExitOK
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "secretctl: unknown command %q\nRun \"secretctl --help\" for usage.\n", name)
		return ExitUsage
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The command's own FlagSet repeats the globals, seeded with what was
	// given before the command, so they may stand on either side.
	g := e.g
	fs.StringVar(&e.g.output, "output", g.output, "output format: table or json")
	fs.StringVar(&e.g.ledgerTable, "ledger-table", g.ledgerTable, "the ledger's DynamoDB table (env "+EnvLedgerTable+")")
	fs.StringVar(&e.g.stateMachineArn, "state-machine-arn", g.stateMachineArn, "the rotation state machine's ARN (env "+EnvStateMachineArn+")")
	fs.StringVar(&e.g.fleetArn, "fleet-state-machine-arn", g.fleetArn, "the fleet state machine's ARN (env "+EnvFleetStateMachineArn+")")
	run := c.flags(fs)
	pos, err := parseInterspersed(fs, rest[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, commandHelp(c, fs))
		return ExitOK
	}
	if err == nil && e.g.output != "table" && e.g.output != "json" && !(c.name == "lease" && e.g.output == "env") {
		err = usagef("--output must be table or json (lease: or env), not %q", e.g.output)
	}
	if err == nil && strings.TrimSpace(e.g.ledgerTable) == "" {
		// Otherwise DynamoDB's own validation error would surface, as a
		// runtime failure, from whichever call came first.
		err = usagef("--ledger-table is empty; name the ledger's DynamoDB table, or leave the flag out to use %s (or %q)", EnvLedgerTable, DefaultLedgerTable)
	}
	if err != nil {
		fmt.Fprintf(stderr, "secretctl %s: %v\nUsage: secretctl %s [flags] %s (see secretctl %s --help)\n", c.name, err, c.name, c.args, c.name)
		return ExitUsage
	}
	return run(e, pos)
}

// fail reports err and returns its exit code.
func (e *env) fail(cmd string, err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		c := lookup(cmd)
		fmt.Fprintf(e.stderr, "secretctl %s: %v\nUsage: secretctl %s [flags] %s (see secretctl %s --help)\n", cmd, err, cmd, c.args, cmd)
		return ExitUsage
	}
	fmt.Fprintf(e.stderr, "secretctl %s: %v\n", cmd, err)
	return ExitError
}

func (e *env) json() bool { return e.g.output == "json" }

func (e *env) needSM() error {
	if e.deps.SM == nil {
		return e.noClient("Secrets Manager")
	}
	return nil
}

func (e *env) needDB() error {
	if e.deps.DB == nil {
		return e.noClient("DynamoDB")
	}
	return nil
}

func (e *env) needSFN() error {
	if e.deps.SFN == nil {
		return e.noClient("Step Functions")
	}
	return nil
}

func (e *env) noClient(what string) error {
	if e.deps.ClientErr != nil {
		return fmt.Errorf("no %s client: %w", what, e.deps.ClientErr)
	}
	return fmt.Errorf("no %s client", what)
}

// exactlyOne checks the positional arguments of a one-secret command.
func exactlyOne(pos []string, what string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usagef("missing %s", what)
	case 1:
		if strings.TrimSpace(pos[0]) == "" {
			return "", usagef("empty %s", what)
		}
		return pos[0], nil
	}
	return "", usagef("expected one %s, got %d arguments: %s", what, len(pos), strings.Join(pos, " "))
}

func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(pos, " "))
	}
	return nil
}
