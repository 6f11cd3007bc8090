package saslprep_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xdg-go/stringprep"
	"golang.org/x/text/unicode/norm"

	"github.com/secretsaga/secretsaga/shared/target/postgres/internal/saslprep"
)

// pgProhibited is what pg_saslprep's prohibited_output_ranges and
// unassigned_codepoint_ranges hold.
var pgProhibited = []stringprep.Set{stringprep.TableC1_2, stringprep.TableC2_1, stringprep.TableC2_2,
	stringprep.TableC3, stringprep.TableC4, stringprep.TableC5, stringprep.TableC6,
	stringprep.TableC7, stringprep.TableC8, stringprep.TableC9, stringprep.TableA1}

// pgSASLprep is PostgreSQL's pg_saslprep (src/common/saslprep.c),
// transliterated step by step over xdg-go/stringprep's tables: the
// reference Prepare must match on every input. It shares no code or
// table with the package.
func pgSASLprep(s string) (string, bool) {
	// "Quick check if the input is pure ASCII."
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
		}
	}
	if ascii {
		return s, true
	}
	if !utf8.ValidString(s) {
		return "", false
	}
	// 1) Map: non_ascii_space_ranges first, then
	// commonly_mapped_to_nothing_ranges (RFC 3454 B.1, which has U+1806).
	var in []rune
	for _, r := range s {
		if stringprep.TableC1_2.Contains(r) {
			in = append(in, ' ')
		} else if _, ok := stringprep.TableB1.Map(r); ok || r == 0x1806 {
			continue
		} else {
			in = append(in, r)
		}
	}
	if len(in) == 0 {
		return "", false // "don't allow empty password"
	}
	// 2) Normalize.
	out := norm.NFKC.String(string(in))
	// 3) Prohibit, over input_chars (the mapped string, not out).
	for _, r := range in {
		for _, t := range pgProhibited {
			if t.Contains(r) {
				return "", false
			}
		}
	}
	// 4) Bidi, over input_chars too.
	randAL := false
	for _, r := range in {
		if stringprep.TableD1.Contains(r) {
			randAL = true
		}
	}
	if randAL {
		for _, r := range in {
			if stringprep.TableD2.Contains(r) {
				return "", false
			}
		}
		if !stringprep.TableD1.Contains(in[0]) || !stringprep.TableD1.Contains(in[len(in)-1]) {
			return "", false
		}
	}
	return out, true
}

// deviation names why PostgreSQL's SASLprep and xdg-go/stringprep's may
// disagree on s ("" if they must not): the differences the package
// comment lists.
func deviation(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
		}
	}
	switch {
	case ascii:
		return "ascii"
	case strings.ContainsRune(s, 0x200B):
		return "zero width space"
	case strings.ContainsRune(s, 0x1806):
		return "mongolian todo soft hyphen"
	}
	var mapped []rune
	for _, r := range s {
		if _, ok := stringprep.TableB1.Map(r); ok {
			continue
		}
		if stringprep.TableC1_2.Contains(r) {
			r = ' '
		}
		mapped = append(mapped, r)
	}
	if len(mapped) == 0 {
		return "empty"
	}
	if norm.NFKC.String(string(mapped)) != string(mapped) {
		return "checked before NFKC"
	}
	return ""
}

func check(t *testing.T, s string) (dev string) {
	t.Helper()
	got, err := saslprep.Prepare(s)
	pg, pgOK := pgSASLprep(s)
	if (err == nil) != pgOK || got != pg {
		t.Errorf("Prepare(%+q) = %+q, %v; PostgreSQL: %+q, ok %v", s, got, err, pg, pgOK)
	}
	x, xerr := stringprep.SASLprep.Prepare(s)
	if (err == nil) == (xerr == nil) && got == x {
		return ""
	}
	dev = deviation(s)
	if dev == "" {
		t.Errorf("Prepare(%+q) = %+q, %v; xdg-go/stringprep: %+q, %v, and no known difference explains it", s, got, err, x, xerr)
	}
	return dev
}

// TestEveryCodePoint compares Prepare with xdg-go/stringprep's SASLprep
// and with PostgreSQL's algorithm for every code point: alone, between
// two Latin letters (NFKC composition, bidi first and last) and between
// two Hebrew letters (bidi: no LCat next to RandALCat). A surrogate
// becomes U+FFFD in a Go string, prohibited either way.
func TestEveryCodePoint(t *testing.T) {
	if testing.Short() {
		t.Skip("1.1 million code points")
	}
	got := map[string]int{}
	for r := rune(0); r <= utf8.MaxRune; r++ {
		for _, s := range []string{string(r), "a" + string(r) + "b", "\u05d0" + string(r) + "\u05d1"} {
			if dev := check(t, s); dev != "" {
				got[dev]++
			}
		}
		if t.Failed() {
			t.Fatalf("stopped at %U", r)
		}
	}
	// Inputs where PostgreSQL (and so Prepare) and xdg disagree, by
	// reason. A change here is a change of behaviour: explain it in the
	// package comment.
	want := map[string]int{
		"ascii":                      66,   // U+0000-U+001F and U+007F, alone and between Latin letters
		"empty":                      25,   // B.1 but U+200B, alone
		"zero width space":           3,    // U+200B, every form
		"mongolian todo soft hyphen": 3,    // U+1806, every form
		"checked before NFKC":        1679, // refused: U+0340, U+1F100, ...; accepted: U+FB1D, "a\u2135b", ...
	}
	if len(got) != len(want) {
		t.Errorf("differences from xdg-go/stringprep by reason = %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("differences from xdg-go/stringprep by reason = %v, want %v", got, want)
			break
		}
	}
}

func TestPrepare(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error
		xdgAgrees      bool
	}{
		{"ascii", "Plain-Passw0rd!", "Plain-Passw0rd!", nil, true},
		{"empty", "", "", nil, true},
		{"fullwidth letter", "Ａ", "A", nil, true},
		{"fullwidth letters and digits", "Ｐａｓｓ-１２３", "Pass-123", nil, true},
		{"ligature", "\ufb01x", "fix", nil, true},
		{"roman numeral", "\u2163", "IV", nil, true},
		{"composed", "e\u0301", "é", nil, true},
		{"already normal", "pässwörd", "pässwörd", nil, true},
		{"no-break space to space", "a\u00a0b", "a b", nil, true},
		{"ideographic space to space", "a\u3000b", "a b", nil, true},
		{"soft hyphen to nothing", "pass\u00adword", "password", nil, true},
		{"variation selector to nothing", "a\ufe0fb", "ab", nil, true},
		{"byte order mark to nothing", "\ufeffab", "ab", nil, true},
		{"non-ASCII control", "a\u0085b", "", saslprep.ErrProhibited, true},
		{"private use", "a\ue000b", "", saslprep.ErrProhibited, true},
		{"non-character", "a\ufdd0b", "", saslprep.ErrProhibited, true},
		{"replacement character", "a\ufffdb", "", saslprep.ErrProhibited, true},
		{"ideographic description", "a\u2ff0b", "", saslprep.ErrProhibited, true},
		{"left-to-right mark", "a\u200eb", "", saslprep.ErrProhibited, true},
		{"language tag", "a\U000E0001b", "", saslprep.ErrProhibited, true},
		{"unassigned in Unicode 3.2", "a\u0221b", "", saslprep.ErrProhibited, true},
		{"plane 16 private use", "a\U00100000b", "", saslprep.ErrProhibited, true},
		{"not UTF-8", "a\xffb", "", saslprep.ErrInvalidUTF8, true},
		{"encoded surrogate", "a\xed\xa0\x80b", "", saslprep.ErrInvalidUTF8, true},

		// Bidi (RFC 3454 section 6).
		{"right-to-left", "\u05d0\u05d1", "\u05d0\u05d1", nil, true},
		{"right-to-left with digits inside", "\u05d01\u05d1", "\u05d01\u05d1", nil, true},
		{"arabic", "\u0627\u0644\u0633", "\u0627\u0644\u0633", nil, true},
		{"RandALCat and LCat", "\u05d0a\u05d1", "", saslprep.ErrBidi, true},
		{"RandALCat not first", "1\u05d0", "", saslprep.ErrBidi, true},
		{"RandALCat not last", "\u05d01", "", saslprep.ErrBidi, true},
		{"RandALCat first, space last", "\u05d0 ", "", saslprep.ErrBidi, true},
		{"right-to-left mark", "\u05d0\u200f", "", saslprep.ErrProhibited, true},
		{"neutral only", "1\u00b2", "12", nil, true},

		// PostgreSQL, not xdg (see the package comment).
		{"ascii control", "a\u0007b", "a\u0007b", nil, false},
		{"only mapped to nothing", "\u00ad", "", saslprep.ErrEmpty, false},
		{"only mapped to nothing, several", "\u200c\ufe0f", "", saslprep.ErrEmpty, false},
		{"zero width space to space", "a\u200bb", "a b", nil, false},
		{"mongolian todo soft hyphen to nothing", "a\u1806b", "ab", nil, false},
		{"tone mark prohibited before NFKC", "a\u0340", "", saslprep.ErrProhibited, false},
		{"unassigned in 3.2 before NFKC", "\U0001F100", "", saslprep.ErrProhibited, false},
		{"bidi before NFKC", "a\ufe70b", "", saslprep.ErrBidi, false},
		{"bidi before NFKC, L becomes RandALCat", "a\u2135b", "a\u05d0b", nil, false},
		{"bidi before NFKC, last becomes a mark", "\ufb1d", "\u05d9\u05b4", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := saslprep.Prepare(tt.in)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Fatalf("Prepare(%+q) = %+q, %v; want %+q, %v", tt.in, got, err, tt.want, tt.err)
			}
			x, xerr := stringprep.SASLprep.Prepare(tt.in)
			if agrees := (xerr == nil) == (err == nil) && x == got; agrees != tt.xdgAgrees {
				t.Errorf("xdg-go/stringprep: %+q, %v; agrees = %v, want %v", x, xerr, agrees, tt.xdgAgrees)
			}
			if dev := check(t, tt.in); (dev == "") != tt.xdgAgrees {
				t.Errorf("difference from xdg-go/stringprep: %q", dev)
			}
		})
	}
}

// The errors must not carry a password's characters (xdg-go/stringprep's
// do: "prohibited character (rune: '\u0007')").
func TestErrorsNameNoCharacter(t *testing.T) {
	for _, s := range []string{"\u05d0x\u05d1", "sec\ue000ret", "sec\xffret", "\u00ad"} {
		_, err := saslprep.Prepare(s)
		if err == nil {
			t.Fatalf("Prepare(%+q): no error", s)
		}
		for _, r := range s {
			if r >= 0x80 && strings.ContainsRune(err.Error(), r) || strings.Contains(err.Error(), "sec") {
				t.Fatalf("Prepare(%+q): error %q names the input", s, err)
			}
		}
	}
}

func FuzzSASLprep(f *testing.F) {
	for _, s := range []string{"", "password", "Ｐａｓｓ", "a\u00a0b", "\u00ad", "\u05d0\u05d1", "\u05d0a\u05d1",
		"a\u0340", "\U0001F100", "a\ufe70b", "a\u200bb", "\u1806", "e\u0301", "\xff", "\ufdfa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		check(t, s)
	})
}
