//go:build ignore

// bundleflate writes rds-ca-bundle.pem.flate, the DEFLATE-compressed copy
// of rds-ca-bundle.pem that dbtls embeds (−0.1 MB per function: README
// "Binary sizes"). gen-bundle.sh runs it; TestBundleFlate checks that the
// two agree.
package main

import (
	"bytes"
	"compress/flate"
	"log"
	"os"
)

func main() {
	pem, err := os.ReadFile("rds-ca-bundle.pem")
	if err != nil {
		log.Fatal(err)
	}
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, flate.BestCompression)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := w.Write(pem); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("rds-ca-bundle.pem.flate", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
