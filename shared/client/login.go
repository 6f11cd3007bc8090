package client

import (
	"context"
	"errors"
	"slices"
	"strings"
)

// Engine describes a kind of server to the login loop: the connectors in
// the subpackages each define one.
type Engine struct {
	// Names are the values of the secret's "engine" field this engine
	// accepts (compared without regard to case).
	Names []string
	// DefaultPort fills a secret that names no port.
	DefaultPort int
	// IsAuthFailure reports whether err is the server refusing the
	// credential (a wrong password, an unknown user): only then is the next
	// candidate tried. Every other error is returned as it is.
	IsAuthFailure func(error) bool
}

// Check refuses a credential for another engine (ErrWrongEngine) and
// fills in the default port.
func (eng Engine) Check(cr *Credential) error {
	if !slices.ContainsFunc(eng.Names, func(n string) bool { return strings.EqualFold(n, cr.Engine) }) {
		return &Error{SecretID: cr.SecretID, Stage: cr.Stage, Kind: ErrWrongEngine,
			Reason: "its engine is " + quote(cr.Engine) + "; this connector takes " + strings.Join(eng.Names, ", ")}
	}
	if cr.Port == 0 {
		cr.Port = eng.DefaultPort
	}
	return nil
}

func quote(s string) string { return `"` + s + `"` }

// Login opens a connection with the secret's credential and, when the
// server refuses it, with the candidates Candidates returns, until one
// logs in or MaxAttempts logins have been tried. connect is called with
// one credential at a time; an error that eng.IsAuthFailure does not
// recognise ends the loop and is returned unchanged. When every candidate
// is refused, the error is an *Error of kind ErrAuthFailed wrapping the
// server's last refusal.
func Login[T any](ctx context.Context, c *Cache, secretID string, eng Engine, connect func(context.Context, Credential) (T, error)) (T, error) {
	var zero T
	first, err := c.Get(ctx, secretID)
	if err != nil {
		return zero, err
	}
	if err := eng.Check(&first); err != nil {
		return zero, err
	}
	res, err := connect(ctx, first)
	if err == nil {
		c.worked(first, false)
		return res, nil
	}
	if eng.IsAuthFailure == nil || !eng.IsAuthFailure(err) {
		return zero, err
	}
	c.authFailures.Add(1)
	refusedAt := c.now()
	lastErr := err
	tried := []Credential{first}
	var offered []string // stage@version of every candidate list, for the log
	// try logs in with each candidate not in tried[from:], within the
	// bound.
	try := func(cands []Credential, from int) (T, bool, error) {
		for _, cand := range cands {
			offered = append(offered, cand.Stage+"@"+cand.VersionID)
		}
		for _, cand := range cands {
			if len(tried) >= c.maxAttempts || ctx.Err() != nil {
				break
			}
			if eng.Check(&cand) != nil {
				continue // a stage for another engine cannot log in here
			}
			if slices.ContainsFunc(tried[from:], cand.same) {
				continue
			}
			c.log.Info("secretsaga client: login refused, trying the next credential",
				"secret", secretID, "refused", tried[len(tried)-1].Stage, "next", cand.Stage, "attempt", len(tried)+1)
			tried = append(tried, cand)
			c.authRetries.Add(1)
			res, err := connect(ctx, cand)
			if err == nil {
				c.worked(cand, true)
				return res, true, nil
			}
			if !eng.IsAuthFailure(err) {
				if ctx.Err() != nil {
					// The caller's deadline ended this login: reported
					// below as interrupted after a refusal, not as the
					// driver's bare timeout.
					lastErr = err
					return zero, false, nil
				}
				return zero, true, err
			}
			c.authFailures.Add(1)
			lastErr = err
		}
		return zero, false, nil
	}
	// The candidates of the last read, shared with every connection refused
	// within the refresh interval...
	cands, err := c.Candidates(ctx, secretID)
	if err != nil {
		return zero, err
	}
	if res, done, err := try(cands, 0); done {
		return res, err
	}
	// ...and, if none of them logs in, of a read made after this refusal:
	// first the credentials not tried yet (a rotation that began since),
	// then the ones refused before the last refusal. The server's password
	// may have moved while the loop walked the list (a rollback sets it
	// back to AWSCURRENT's just after AWSCURRENT was refused), so only the
	// last refusal is taken as still true.
	if len(tried) < c.maxAttempts && ctx.Err() == nil {
		if cands, err := c.candidates(ctx, secretID, refusedAt); err == nil {
			if res, done, err := try(cands, 0); done {
				return res, err
			}
			if res, done, err := try(cands, len(tried)-1); done {
				return res, err
			}
		}
	}
	stages := make([]string, len(tried))
	versions := make([]string, len(tried))
	for i, cr := range tried {
		stages[i], versions[i] = cr.Stage, cr.Stage+"@"+cr.VersionID
	}
	if cerr := ctx.Err(); cerr != nil {
		// The caller gave up before every candidate was tried: that is not
		// "the server refused every credential", and saying so would send
		// whoever reads it after a password that may well work.
		c.interrupted.Add(1)
		c.log.Warn("secretsaga client: the caller's context ended before the other credentials were tried",
			"secret", secretID, "tried", versions, "offered", offered, "error", cerr)
		return zero, &Error{SecretID: secretID, Kind: ErrInterrupted,
			Reason: "tried " + strings.Join(stages, ", ") + "; the first was refused, the context ended before one logged in", Err: errors.Join(cerr, lastErr)}
	}
	c.exhausted.Add(1)
	c.log.Warn("secretsaga client: the server refused every credential", "secret", secretID, "tried", versions, "offered", offered)
	return zero, &Error{SecretID: secretID, Kind: ErrAuthFailed,
		Reason: "tried " + strings.Join(stages, ", "), Err: lastErr}
}
