package local

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// The leak scan finds a password however the product's outputs spell it:
// as is, as encoding/json writes it (HTML characters escaped) and as
// log/slog's JSON handler does. A generated password may hold < > & which
// both escape, so a plain substring search alone would miss a leak.
func TestFindSeesEscapedPasswords(t *testing.T) {
	const pw = `Ab1<x>&y"z\w~`
	ev, _ := json.Marshal(map[string]string{"detail": pw})
	var logs strings.Builder
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("oops", "value", pw)
	var plain strings.Builder
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]string{"v": pw})
	haystacks := map[string]string{
		"events": string(ev), "logs": logs.String(), "plain json": plain.String(), "stderr": "panic: " + pw,
		"clean": `{"msg":"nothing here","n":1}`,
	}
	got := strings.Join(find([]string{pw}, haystacks), ",")
	if got != "events,logs,plain json,stderr" {
		t.Fatalf("found in %q; want every haystack but the clean one", got)
	}
}
