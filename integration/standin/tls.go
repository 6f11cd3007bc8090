package standin

import (
	"fmt"
	"os"
	"path/filepath"
)

// TLS turns TLS on in a stand-in server: the server's certificate and its
// private key, PEM (tests make them with shared/dbtls/dbtlstest).
type TLS struct {
	CertPEM, KeyPEM []byte
}

// Names of the files a stand-in with TLS keeps its certificate and key in.
const (
	tlsCertFile = "server.crt"
	tlsKeyFile  = "server.key"
)

// writeTLS writes the certificate and key into dir, owned by the server's
// user and readable by it alone (PostgreSQL refuses a key that others can
// read).
func writeTLS(dir string, t *TLS, as runAs) error {
	for name, data := range map[string][]byte{tlsCertFile: t.CertPEM, tlsKeyFile: t.KeyPEM} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return fmt.Errorf("standin: %w", err)
		}
		if err := os.Chown(p, as.uid, as.gid); err != nil {
			return fmt.Errorf("standin: %w", err)
		}
	}
	return nil
}
