package secretstore

import (
	"crypto/rand"
	"math/big"
	"strings"

	"github.com/secretsaga/secretsaga/shared/secret"
)

// Character classes of Secrets Manager's GetRandomPassword ("The password
// can contain uppercase and lowercase letters, numbers, and the following
// characters: ! " # $ % & ' ( ) * + , - . / : ; < = > ? @ [ \ ] ^ _ ` { | } ~"),
// which Generate follows so that a policy means what it meant when create
// asked Secrets Manager for the password.
const (
	lowerChars = "abcdefghijklmnopqrstuvwxyz"
	upperChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digitChars = "0123456789"
	punctChars = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
)

// classes are the character classes the policy keeps, each without the
// excluded characters; a class left empty is dropped (as GetRandomPassword
// drops a type its ExcludeCharacters empties).
func (p Policy) classes() []string {
	keep := func(set string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune(p.ExcludeCharacters, r) {
				return -1
			}
			return r
		}, set)
	}
	var out []string
	for _, c := range []struct {
		excluded bool
		set      string
	}{{false, lowerChars}, {false, upperChars}, {false, digitChars}, {p.ExcludePunctuation, punctChars}} {
		if k := keep(c.set); !c.excluded && k != "" {
			out = append(out, k)
		}
	}
	return out
}

// check refuses a policy no password can meet: every character excluded,
// or fewer characters than the classes that must each appear once.
func (p Policy) check() error {
	cl := p.classes()
	switch {
	case len(cl) == 0:
		return &PolicyError{Tag: TagExcludeChars, Reason: "excludes every character; exclude fewer"}
	case int64(len(cl)) > p.Length:
		return &PolicyError{Tag: TagPasswordLength, Reason: "is shorter than the character types the password must each include"}
	}
	return nil
}

// Generate makes a password that meets the policy, from crypto/rand: Length
// characters, at least one of each kept class (GetRandomPassword's
// RequireEachIncludedType, which create always asked for), uniformly
// distributed otherwise. It is what create used to ask Secrets Manager's
// GetRandomPassword for; generating it here saves a call per rotation and
// the one grant of the functions' roles that cannot be scoped to a
// resource, and draws from the same kind of source (the operating system's
// CSPRNG).
func (p Policy) Generate() (secret.Password, error) {
	if err := p.check(); err != nil {
		return secret.Password{}, err
	}
	cl := p.classes()
	all := strings.Join(cl, "")
	pw := make([]byte, 0, p.Length)
	for _, c := range cl {
		pw = append(pw, c[randIntn(len(c))])
	}
	for int64(len(pw)) < p.Length {
		pw = append(pw, all[randIntn(len(all))])
	}
	// Fisher-Yates, so the one-of-each characters are not always first.
	for i := len(pw) - 1; i > 0; i-- {
		j := randIntn(i + 1)
		pw[i], pw[j] = pw[j], pw[i]
	}
	out := secret.NewPassword(string(pw))
	clear(pw)
	return out, nil
}

func randIntn(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		// crypto/rand.Reader never fails on the platforms Lambda runs
		// (Go 1.24+ crashes the program rather than return an error).
		panic("secretstore: crypto/rand: " + err.Error())
	}
	return int(v.Int64())
}
