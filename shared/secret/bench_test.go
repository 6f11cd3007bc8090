package secret

import "testing"

const benchValue = `{"engine":"postgres","host":"db.example.internal","port":5432,"username":"app_user","password":"Zq3-example-not-a-secret-9","dbname":"orders","extra":{"k":[1,2,3]}}`

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchValue); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWithPasswordSecretString(b *testing.B) {
	v, err := Parse(benchValue)
	if err != nil {
		b.Fatal(err)
	}
	pw := NewPassword("another-example-password-32chars")
	b.ReportAllocs()
	for b.Loop() {
		_ = v.WithPassword(pw).SecretString()
	}
}
