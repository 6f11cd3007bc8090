package dbtls

import (
	"bytes"
	"os"
	"testing"
)

// The functions embed rds-ca-bundle.pem.flate: it must decompress to
// exactly rds-ca-bundle.pem (gen-bundle.sh writes both).
func TestBundleFlate(t *testing.T) {
	want, err := os.ReadFile("rds-ca-bundle.pem")
	if err != nil {
		t.Fatal(err)
	}
	got, err := rdsBundle()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("rds-ca-bundle.pem.flate decompresses to %d bytes that differ from rds-ca-bundle.pem (%d bytes); run gen-bundle.sh", len(got), len(want))
	}
}
