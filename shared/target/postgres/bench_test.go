package postgres

import "testing"

// The SCRAM verifier is the one CPU-heavy thing a set step does locally
// (PBKDF2, 4096 iterations, as PostgreSQL's default).
func BenchmarkScramVerifier(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scramVerifier("a-32-character-example-password!", 4096); err != nil {
			b.Fatal(err)
		}
	}
}
