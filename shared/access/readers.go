package access

import (
	"strings"
)

// Readers is a secret's declared readers, from its tag secretsaga:readers:
// entries separated by commas or spaces, each a role (or user) name
// ("app-reader", "app-*") or an ARN pattern ("arn:aws:iam::*:role/app-*");
// "*" matches any run of characters, "?" one.
type Readers []string

// ParseReaders splits a tag value.
func ParseReaders(tag string) Readers {
	return strings.FieldsFunc(tag, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// Match reports whether the caller (principal ARN, and the consumer it is
// tracked by: its role for a session) is one of the readers.
func (rs Readers) Match(principal, consumer string) bool {
	for _, e := range rs {
		if strings.HasPrefix(e, "arn:") {
			if wildcard(e, consumer) || wildcard(e, principal) {
				return true
			}
			continue
		}
		if wildcard(e, nameOf(consumer)) {
			return true
		}
	}
	return false
}

// nameOf is the last path element of an IAM ARN's resource (role/path/NAME →
// NAME).
func nameOf(arn string) string {
	i := strings.LastIndexAny(arn, "/:")
	return arn[i+1:]
}

// wildcard matches s against p, "*" any run (slashes included), "?" one
// character, iteratively (no backtracking blow-up on long inputs).
func wildcard(p, s string) bool {
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
