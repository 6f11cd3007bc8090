package cli

import (
	"flag"
	"fmt"
	"time"
)

var rollbackCmd = &command{
	name: "rollback", args: "<secret>",
	short: "make AWSPREVIOUS the AWSCURRENT version again, database included",
	long: `Rolls a secret back to its AWSPREVIOUS version through the rotation state
machine: the saga sets the database password back to that version's value,
tests it, and moves AWSCURRENT to it, with the same lease, journal and
compensation as a rotation. It starts an execution with input
{"SecretId": <secret ARN>, "Rollback": true, "ClientRequestToken": <AWSPREVIOUS version id>}.

Refused (exit 1) when the secret has no AWSPREVIOUS version (it was never
rotated) or AWSPREVIOUS is the AWSCURRENT version.

With --wait it follows the execution like rotate --wait and exits 1 if it
did not succeed. Needs --state-machine-arn (or SECRETSAGA_STATE_MACHINE_ARN).`,
	flags: func(fs *flag.FlagSet) func(*env, []string) int {
		wait := fs.Bool("wait", false, "wait for the execution to end, printing progress")
		poll := fs.Duration("poll-interval", 2*time.Second, "how often --wait polls Step Functions")
		timeout := fs.Duration("timeout", 35*time.Minute, "how long --wait waits at most")
		return func(e *env, pos []string) int {
			id, err := exactlyOne(pos, "secret")
			if err == nil && e.g.stateMachineArn == "" {
				err = usagef("no state machine: set --state-machine-arn or %s", EnvStateMachineArn)
			}
			if err == nil && (*poll <= 0 || *timeout <= 0) {
				err = usagef("--poll-interval and --timeout must be positive")
			}
			if err == nil {
				err = e.rollback(id, *wait, *poll, *timeout)
			}
			if err != nil {
				return e.fail("rollback", err)
			}
			return ExitOK
		}
	},
}

func (e *env) rollback(id string, wait bool, poll, timeout time.Duration) error {
	if err := e.needSM(); err != nil {
		return err
	}
	if err := e.needSFN(); err != nil {
		return err
	}
	s, err := e.describe(id)
	if err != nil {
		return err
	}
	cur, prev := s.holder("AWSCURRENT"), s.holder("AWSPREVIOUS")
	switch {
	case prev == "":
		return fmt.Errorf("cannot roll back %s: it has no AWSPREVIOUS version (it was never rotated); nothing was started", s.Name)
	case prev == cur:
		return fmt.Errorf("cannot roll back %s: AWSPREVIOUS is the AWSCURRENT version %s; nothing was started", s.Name, cur)
	}
	input := map[string]any{"SecretId": s.ARN, "Rollback": true, "ClientRequestToken": prev}
	// The version id alone would not be unique: the same version can be
	// rolled back to again after a later rotation.
	name := "secretctl-rollback-" + prev + "-" + shortToken(e.deps.NewToken())
	return e.runSaga(s, sagaRun{what: "rollback", name: name, input: input, version: prev, rollback: true}, wait, poll, timeout)
}

// shortToken is the first 8 characters of a token (an execution name is at
// most 80 characters).
func shortToken(t string) string {
	if len(t) > 8 {
		return t[:8]
	}
	return t
}
