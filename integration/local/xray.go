package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"

	"github.com/secretsaga/secretsaga/shared/tracing"
)

// XRayDaemon stands in for the X-Ray daemon that Lambda runs next to a
// function with active tracing: it takes segment documents over UDP as the
// daemon does (AWS X-Ray developer guide, "Sending segment documents to
// the X-Ray daemon": each datagram is the header {"format": "json",
// "version": 1}, a newline, and one JSON segment document) and keeps them.
// A datagram without that header or with a document that is not JSON is
// kept as malformed (the daemon drops it). Not implemented: relaying to
// X-Ray (PutTraceSegments), the daemon's TCP sampling proxy, and X-Ray's
// own checks of the documents (field limits, inferred segments, the
// service graph).
type XRayDaemon struct {
	conn net.PacketConn

	mu        sync.Mutex
	docs      []tracing.Document
	raw       strings.Builder
	malformed []string
	done      chan struct{}
}

const xrayHeader = `{"format": "json", "version": 1}`

// StartXRayDaemon listens on a free UDP port of the loopback interface.
func StartXRayDaemon() (*XRayDaemon, error) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &XRayDaemon{conn: conn, done: make(chan struct{})}
	go d.serve()
	return d, nil
}

func (d *XRayDaemon) serve() {
	defer close(d.done)
	buf := make([]byte, 64*1024+len(xrayHeader)+1)
	for {
		n, _, err := d.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		head, body, ok := bytes.Cut(buf[:n], []byte("\n"))
		var doc tracing.Document
		d.mu.Lock()
		d.raw.Write(buf[:n])
		d.raw.WriteByte('\n')
		if !ok || string(head) != xrayHeader || json.Unmarshal(body, &doc) != nil {
			d.malformed = append(d.malformed, string(buf[:n]))
		} else {
			d.docs = append(d.docs, doc)
		}
		d.mu.Unlock()
	}
}

// Addr is the daemon's address as AWS_XRAY_DAEMON_ADDRESS names it.
func (d *XRayDaemon) Addr() string { return d.conn.LocalAddr().String() }

// Documents returns the documents received so far.
func (d *XRayDaemon) Documents() []tracing.Document {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]tracing.Document(nil), d.docs...)
}

// Malformed returns the datagrams the daemon would have dropped.
func (d *XRayDaemon) Malformed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.malformed...)
}

// Raw is every datagram received, one per line (for the leak scan).
func (d *XRayDaemon) Raw() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.raw.String()
}

// Close stops the daemon.
func (d *XRayDaemon) Close() error {
	err := d.conn.Close()
	<-d.done
	return err
}
