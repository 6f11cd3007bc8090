package access

import (
	"slices"
	"strings"

	"github.com/secretsaga/secretsaga/shared/ledger"
)

// ConsumerState is what the audit knows of one consumer of a secret.
type ConsumerState struct {
	ledger.Consumer
	// VersionsBehind counts the rotations since the version the consumer
	// holds was AWSCURRENT: 0 it holds AWSCURRENT, 1 AWSPREVIOUS, 2 any
	// older version (Secrets Manager labels only the last two).
	VersionsBehind int
	// Stale: the consumer has not read since the last rotation.
	Stale bool
	// BreaksAtNextRotation: the password it holds still works and the
	// next rotation will change it.
	BreaksAtNextRotation bool
	// AlreadyInvalid: the password it holds was already changed.
	AlreadyInvalid bool
}

// Assess applies the staleness rule to a secret's consumers, given the
// secret's stages (version id → labels) and its strategy.
//
// The rule, from how the strategies change passwords (README "Engines and
// strategies"): with a single user, a rotation replaces the password of the
// login AWSCURRENT names, so after it only AWSCURRENT works; with alternating
// users, a rotation sets the password of the user AWSCURRENT does not name,
// so AWSPREVIOUS keeps working until the next rotation. A version logs in
// while it is fewer than L rotations behind, L = 1 (single user) or 2
// (alternating), and the next rotation invalidates the version L−1 behind.
// A consumer is Stale when it holds a version other than AWSCURRENT (it has
// not read since the last rotation, so it is presumed to cache): with
// alternating users that is the version the next rotation breaks
// (BreaksAtNextRotation), the warning comes one rotation ahead; with a
// single user the last rotation already changed its password
// (AlreadyInvalid), as it will for any version older than L. A consumer
// holding AWSCURRENT is not stale: it read after the last change, and a
// single-user rotation invalidates every consumer's AWSCURRENT alike, which
// is what re-reading on a refused login (shared/client) is for.
func Assess(consumers []ledger.Consumer, stages map[string][]string, alternating bool) []ConsumerState {
	limit := 1
	if alternating {
		limit = 2
	}
	out := make([]ConsumerState, 0, len(consumers))
	for _, c := range consumers {
		st := ConsumerState{Consumer: c, VersionsBehind: 2}
		switch labels := stages[c.VersionID]; {
		case slices.Contains(labels, "AWSCURRENT"):
			st.VersionsBehind = 0
		case slices.Contains(labels, "AWSPREVIOUS"):
			st.VersionsBehind = 1
		}
		st.Stale = st.VersionsBehind >= 1
		st.BreaksAtNextRotation = st.Stale && st.VersionsBehind == limit-1
		st.AlreadyInvalid = st.VersionsBehind >= limit
		out = append(out, st)
	}
	return out
}

// Alternating reports whether a secret rotates with alternating users, from
// the logins its last rotation locked (ledger: with alternating users acquire
// locks both <user> and <user>_clone), or its tag secretsaga:strategy
// ("alternating" or "single"), which wins.
func Alternating(lease ledger.Lease, strategyTag string) bool {
	switch strings.ToLower(strategyTag) {
	case "alternating":
		return true
	case "single":
		return false
	}
	keys := lease.LoginKeys()
	for _, k := range keys {
		if slices.Contains(keys, k+"_clone") {
			return true
		}
	}
	return false
}
