// Command demo is `make demo`: it starts the local stand-ins, creates a demo
// PostgreSQL role and its secret, and runs two rotations through
// statemachines/rotation.asl.json: one that succeeds, and one whose test step
// fails after set changed the password, which the saga rolls back. It prints
// both timelines, the version labels, the ledger journal and the events, and
// proves by logging in that the old password works again after the rollback.
// It exits non-zero if anything is not as it should be.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretsaga/secretsaga/cmd/secretctl/cli"
	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("\ndemo OK: one rotation committed, one rolled back, invariants hold, no password printed anywhere.")
}

func section(title string) {
	fmt.Printf("\n== %s %s\n", title, strings.Repeat("=", max(0, 70-len(title))))
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	section("starting local stand-ins")
	env, err := local.Start(ctx, local.Options{RetryIntervalScale: 0.1})
	if err != nil {
		return err
	}
	defer env.Close()
	names := make([]string, 0, len(env.Startup))
	for n := range env.Startup {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("  %-30s ready in %v\n", n, env.Startup[n].Round(time.Millisecond))
	}

	section("demo secret")
	arn, err := env.PostgresSecret(ctx, "demo/app-db", "app_user")
	if err != nil {
		return err
	}
	fmt.Printf("  secret %s\n  holds the login of PostgreSQL role app_user on %s:%d\n", arn, env.Postgres.Host, env.Postgres.Port)
	start, err := labels(ctx, env, arn)
	if err != nil {
		return err
	}

	section("run 1: rotation")
	x1, err := env.Execute(ctx, "demo-rotation-1", map[string]any{"SecretId": arn})
	if err != nil {
		return err
	}
	report(x1)
	after1, err := labels(ctx, env, arn)
	if err != nil {
		return err
	}
	if x1.Status != "SUCCEEDED" || after1["AWSCURRENT"] == start["AWSCURRENT"] || after1["AWSPREVIOUS"] != start["AWSCURRENT"] {
		return fmt.Errorf("run 1 did not rotate: %s %s", x1.Status, x1.Error)
	}
	if err := logins(ctx, env, arn, after1, map[string]bool{"AWSCURRENT": true, "AWSPREVIOUS": false}); err != nil {
		return err
	}

	section("run 2: the test step fails after set changed the password")
	fmt.Println("  fault: testsecret's login with the new password is refused (injected at the target, no code path changed)")
	env.Faults.Reset() // rules count calls from here
	env.Faults.Add(faultinject.Rule{Function: "testsecret", Call: "target.Verify", Nth: 1, Phase: faultinject.Before, Err: target.ErrAuthFailed})
	x2, err := env.Execute(ctx, "demo-rotation-2", map[string]any{"SecretId": arn})
	if err != nil {
		return err
	}
	report(x2)
	after2, err := labels(ctx, env, arn)
	if err != nil {
		return err
	}
	if x2.Status != "FAILED" || x2.Error != "TestFailedError" || after2["AWSCURRENT"] != after1["AWSCURRENT"] {
		return fmt.Errorf("run 2 did not roll back: %s %s", x2.Status, x2.Error)
	}
	if err := logins(ctx, env, arn, after2, map[string]bool{"AWSCURRENT": true}); err != nil {
		return err
	}
	lease, _, err := env.Ledger.Get(ctx, arn)
	if err != nil {
		return err
	}
	if err := env.CanLogin(ctx, arn, lease.Token, ""); err == nil {
		return fmt.Errorf("the rolled-back password (version %s) still logs in", lease.Token)
	}
	fmt.Printf("  login with the rolled-back password (version %s): refused, as it must be\n", short(lease.Token))

	section("ledger journal (DynamoDB)")
	hist, err := env.Ledger.History(ctx, arn)
	if err != nil {
		return err
	}
	for _, r := range hist {
		extra := ""
		if r.ErrorClass != "" {
			extra = "  error=" + r.ErrorClass
		}
		fmt.Printf("  %s  rotation %d #%d  %-19s by %-13s version %s%s\n", r.Time().Format("15:04:05.000"), r.Fencing, r.Seq, r.State, r.Actor, short(r.Token), extra)
	}

	section("events (EventBridge)")
	for _, e := range env.Events.Entries() {
		var d map[string]any
		_ = json.Unmarshal(e.Detail, &d)
		line := fmt.Sprintf("  %-22s severity=%v version=%v", e.DetailType, d["severity"], short(fmt.Sprint(d["versionId"])))
		if c, ok := d["errorClass"].(string); ok && c != "" {
			line += " errorClass=" + c
		}
		fmt.Println(line)
	}

	section("invariants (DESIGN.md)")
	if bad := env.CheckInvariants(ctx, arn, x1, x2); len(bad) > 0 {
		for _, b := range bad {
			fmt.Println("  VIOLATED:", b)
		}
		return fmt.Errorf("%d invariant violations", len(bad))
	}
	fmt.Println("  1 one AWSCURRENT  2 it logs in  3 no AWSPENDING  4 ledger agrees, lease free  5 no password in logs/events/ledger/executions: all hold")

	return operatorView(ctx, env, arn, "demo/app-db")
}

// operatorView shows the demo secret the way an operator sees it: secretctl
// status and history, run in-process against the local endpoints (Step
// Functions included).
func operatorView(ctx context.Context, env *local.Env, arn, name string) error {
	api, err := env.StartSFNAPI("")
	if err != nil {
		return err
	}
	deps := cli.NewDepsFromConfig(env.AWS, cli.Endpoints{SecretsManager: env.SMURL, DynamoDB: env.DynamoDB.Endpoint, SFN: api.URL})
	deps.Getenv = func(k string) string {
		return map[string]string{
			cli.EnvStateMachineArn: api.StateMachineArn, cli.EnvFleetStateMachineArn: api.FleetStateMachineArn, cli.EnvLedgerTable: local.Table,
		}[k]
	}
	pws, err := passwords(ctx, env, arn)
	if err != nil {
		return err
	}
	for _, args := range [][]string{{"status", name}, {"history", name}} {
		section("secretctl " + strings.Join(args, " "))
		var out bytes.Buffer
		code := cli.Run(ctx, args, &out, &out, deps)
		for _, pw := range pws {
			if strings.Contains(out.String(), pw) {
				return fmt.Errorf("secretctl %s printed a password", args[0])
			}
		}
		fmt.Print(indent(out.String()))
		if code != cli.ExitOK {
			return fmt.Errorf("secretctl %s exited %d", strings.Join(args, " "), code)
		}
	}
	return nil
}

// passwords returns the password of every version of the secret.
func passwords(ctx context.Context, env *local.Env, arn string) ([]string, error) {
	st, err := env.Stages(ctx, arn)
	if err != nil {
		return nil, err
	}
	var pws []string
	for id := range st {
		out, err := env.SMClient.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn, VersionId: &id})
		if err != nil {
			return nil, err
		}
		v, err := secret.Parse(aws.ToString(out.SecretString))
		if err != nil {
			return nil, err
		}
		pws = append(pws, v.Password.Reveal())
	}
	return pws, nil
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func report(x *sfnlocal.Execution) {
	fmt.Print(indent(x.Timeline()))
	fmt.Printf("  result: %s", x.Status)
	if x.Error != "" {
		fmt.Printf(" (%s)", x.Error)
	}
	fmt.Printf(" in %v, %d state transitions\n", x.Duration.Round(time.Millisecond), x.Transitions())
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("  | " + l + "\n")
	}
	return b.String()
}

// labels prints and returns stage → version.
func labels(ctx context.Context, env *local.Env, arn string) (map[string]string, error) {
	st, err := env.Stages(ctx, arn)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var lines []string
	for id, stages := range st {
		for _, s := range stages {
			out[s] = id
		}
		label := strings.Join(stages, ",")
		if label == "" {
			label = "(no label)"
		}
		lines = append(lines, fmt.Sprintf("  version %s  %s", short(id), label))
	}
	slices.Sort(lines)
	fmt.Println("  labels:")
	for _, l := range lines {
		fmt.Println("  " + l)
	}
	return out, nil
}

func logins(ctx context.Context, env *local.Env, arn string, lbl map[string]string, want map[string]bool) error {
	for _, stage := range []string{"AWSCURRENT", "AWSPREVIOUS"} {
		should, ok := want[stage]
		if !ok {
			continue
		}
		err := env.CanLogin(ctx, arn, lbl[stage], "")
		switch {
		case should && err == nil:
			fmt.Printf("  login with %s (version %s): ok\n", stage, short(lbl[stage]))
		case !should && err != nil:
			fmt.Printf("  login with %s (version %s): refused, as it must be\n", stage, short(lbl[stage]))
		case should:
			return fmt.Errorf("%s does not log in: %v", stage, err)
		default:
			return fmt.Errorf("%s still logs in", stage)
		}
	}
	return nil
}
