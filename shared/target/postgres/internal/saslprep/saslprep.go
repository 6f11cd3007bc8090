// Package saslprep is SASLprep (RFC 4013, a profile of RFC 3454
// stringprep) as PostgreSQL applies it to passwords: the server and libpq
// normalise a password with src/common/saslprep.c before SCRAM-SHA-256
// uses it, and fall back to the raw password when that fails. A verifier
// computed here logs in with libpq (psql, psycopg, ...) only if it agrees
// with that code, so PostgreSQL's behaviour, not the RFC's letter, is the
// reference.
//
// It replaces github.com/xdg-go/stringprep in the Lambda bootstraps: that
// package builds all of RFC 3454's tables (B.2 case folding included,
// which SASLprep never uses) as Go maps at init, about 215 KB the linker
// cannot drop. The tables here are generated from xdg's exported ones
// (gen.go) as unicode.RangeTables, and NFKC comes from
// golang.org/x/text/unicode/norm, which the binaries link anyway.
//
// Where xdg-go/stringprep's SASLprep profile and PostgreSQL's
// pg_saslprep differ, this package follows PostgreSQL:
//
//   - A pure-ASCII password is returned unchanged, ASCII control
//     characters included (xdg: prohibited). Either way the password used
//     is the raw one.
//   - A password that maps to nothing (only B.1 characters, say a soft
//     hyphen) is an error, so the raw password is used (xdg: "").
//   - U+200B ZERO WIDTH SPACE is in both C.1.2 and B.1; PostgreSQL maps
//     it to SPACE (xdg: to nothing).
//   - U+1806 MONGOLIAN TODO SOFT HYPHEN is mapped to nothing, as RFC 3454
//     B.1 lists it (xdg's B.1 lacks it).
//   - The prohibited, unassigned and bidirectional checks look at the
//     mapped string before NFKC, not at the normalised output as RFC 3454
//     says (xdg: after). So "a\u0340" (a prohibited tone mark that NFKC
//     turns into U+0300) is an error, and a character unassigned in
//     Unicode 3.2 that NFKC decomposes (U+1F100 DIGIT ZERO FULL STOP) is
//     refused, while xdg returns "à" and "0.".
//
// The exhaustive test pins how many code points each difference affects.
package saslprep

import (
	"errors"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

//go:generate go run gen.go

// The errors name no character: a password's characters are secret.
var (
	ErrInvalidUTF8 = errors.New("saslprep: not valid UTF-8")
	ErrEmpty       = errors.New("saslprep: nothing left after mapping")
	ErrProhibited  = errors.New("saslprep: prohibited or unassigned character")
	ErrBidi        = errors.New("saslprep: right-to-left text breaks the bidirectional rules")
)

// Prepare returns the SASLprep form of s as PostgreSQL's pg_saslprep
// computes it, or an error when pg_saslprep fails (and PostgreSQL uses s
// itself).
func Prepare(s string) (string, error) {
	if isASCII(s) {
		return s, nil
	}
	if !utf8.ValidString(s) {
		return "", ErrInvalidUTF8
	}

	// 1) Map: non-ASCII spaces to SPACE, first (U+200B is in both
	// tables), then B.1 to nothing.
	mapped := make([]rune, 0, len(s))
	for _, r := range s {
		switch {
		case unicode.Is(nonASCIISpace, r):
			mapped = append(mapped, ' ')
		case unicode.Is(mappedToNothing, r):
		default:
			mapped = append(mapped, r)
		}
	}
	if len(mapped) == 0 {
		return "", ErrEmpty
	}

	// 3) Prohibit and 4) bidi, on the mapped string as PostgreSQL does
	// (see the package comment), so before 2) NFKC.
	hasRandAL := false
	for _, r := range mapped {
		if unicode.Is(prohibited, r) {
			return "", ErrProhibited
		}
		if unicode.Is(randALCat, r) {
			hasRandAL = true
		}
	}
	if hasRandAL {
		for _, r := range mapped {
			if unicode.Is(lCat, r) {
				return "", ErrBidi
			}
		}
		if !unicode.Is(randALCat, mapped[0]) || !unicode.Is(randALCat, mapped[len(mapped)-1]) {
			return "", ErrBidi
		}
	}

	// 2) Normalize.
	return norm.NFKC.String(string(mapped)), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
