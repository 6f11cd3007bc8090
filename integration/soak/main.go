// Command soak is `make soak`: what applications see while secretsaga
// rotates their secrets. On the local stand-ins (PostgreSQL, MariaDB,
// Redis, the Secrets Manager emulator, the state machine), each engine ×
// strategy cell gets one secret, application workers that query its
// database continually through connection pools that log in again every
// few hundred milliseconds, and a series of rotations through the state
// machine: successes, rotations whose test fails after set, bake
// rollbacks, operator rollbacks and injected faults. Each application mode
// (a Dialer: the naive baseline, and the client library) runs its own
// workers on the same secrets and rotations; every request is counted,
// ok or failed, with the longest time a worker could not log in.
//
// It prints a table, writes results/soak.json, and exits 1 if a mode that
// must never fail did, a rotation ended otherwise than its kind should, or
// an invariant (DESIGN.md) or the leak scan failed afterwards.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/shared/client"
)

func main() {
	var cfg Config
	out := flag.String("out", "results/soak.json", "where to write the JSON report")
	cells := flag.String("cells", "", `comma-separated cells to run, e.g. "postgres × single user" (default: all six)`)
	clientLog := flag.String("client-log", "", "also write the client library's log lines, debug level included (JSON, no values), to this file, to see why a connection failed")
	flag.IntVar(&cfg.Rotations, "rotations", 200, "rotations per engine × strategy")
	flag.DurationVar(&cfg.Duration, "duration", 0, "start no rotation after this long (0: no limit); the report gives the count run")
	flag.IntVar(&cfg.Workers, "workers", 2, "application workers per secret and per mode")
	flag.DurationVar(&cfg.Every, "every", 50*time.Millisecond, "each worker sends a request this often")
	flag.DurationVar(&cfg.Lifetime, "lifetime", 200*time.Millisecond, "a pooled connection's lifetime: each worker logs in again this often")
	flag.DurationVar(&cfg.NaiveEvery, "naive-refresh", time.Second, "the naive application reads AWSCURRENT this often")
	flag.DurationVar(&cfg.Pause, "pause", client.DefaultRefreshInterval+500*time.Millisecond,
		"pause between two rotations of a secret (below the client's refresh interval, 1 s, a rotation may begin before the client may read the secret again)")
	flag.Parse()
	if *cells != "" {
		cfg.Cells = strings.Split(*cells, ",")
	}
	cfg.Log = os.Stderr
	if *clientLog != "" {
		f, err := os.Create(*clientLog)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		code := run(cfg, *out, f)
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
		os.Exit(code)
	}
	os.Exit(run(cfg, *out, nil))
}

func run(cfg Config, out string, clientLog io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	env, err := local.Start(ctx, local.Options{RetryIntervalScale: 0.01, CaptureStdio: true})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the local stack:", err)
		return 1
	}
	defer env.Close()
	logs, level := io.Writer(env.Logs), slog.LevelInfo
	if clientLog != nil {
		logs, level = io.MultiWriter(env.Logs, clientLog), slog.LevelDebug
	}
	res, err := Run(context.Background(), env, cfg, dialers(env, cfg, logs, level)...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	printTable(os.Stdout, res)
	if err := writeJSON(out, res); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("report: %s\n", out)
	if bad := res.Problems(); len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintln(os.Stderr, "FAIL:", b)
		}
		return 1
	}
	return 0
}

// dialers are the application modes, the client library first. The
// client's log lines go to env.Logs, which the leak scan searches.
// dialers are the application modes; the client's log lines go to logs
// (env.Logs at least: the leak scan reads them).
func dialers(env *local.Env, cfg Config, logs io.Writer, level slog.Level) []Dialer {
	return []Dialer{
		&Client{API: env.SMClient, Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level})).With("app", "soak")},
		&Naive{SM: env.SMClient, Every: cfg.NaiveEvery},
	}
}

// maxOtherPer: a mode that must not fail may see at most one request in
// this many fail with no login refused (a timeout under load).
const maxOtherPer = 10_000

// mustNotFail names the modes that must see 0 failed requests with a login
// refused.
var mustNotFail = map[string]bool{"client": true}

// Problems are the reasons the soak failed: failed requests or probes of a
// mode that must not fail, rotations that ended otherwise than their kind,
// invariant violations and leaks.
func (r *Result) Problems() []string {
	var bad []string
	for _, c := range r.Cells {
		for _, u := range c.Unexpected {
			bad = append(bad, fmt.Sprintf("%s × %s: %s", c.Engine, c.Strategy, u))
		}
		for _, m := range c.Modes {
			if !mustNotFail[m.Mode] {
				continue
			}
			if m.Refused > 0 || m.ProbesFailed > 0 {
				bad = append(bad, fmt.Sprintf("%s × %s: %s: %d of %d requests failed with a login refused and %d of %d window probes failed (%s)",
					c.Engine, c.Strategy, m.Mode, m.Refused, m.Requests, m.ProbesFailed, m.Probes, m.FirstError))
			}
			// A request that timed out or could not connect with no login
			// refused is not a credential failure: a 2-core machine under
			// load times one out now and then, whatever rotates (the naive
			// mode meets them between rotations too). More than one in
			// 10,000 is a problem all the same: a client that hangs shows
			// as timeouts.
			if other := m.Failed - m.Refused; other*maxOtherPer > m.Requests {
				bad = append(bad, fmt.Sprintf("%s × %s: %s: %d of %d requests failed with no login refused (timeouts), more than 1 in %d (%s)",
					c.Engine, c.Strategy, m.Mode, other, m.Requests, maxOtherPer, m.FirstError))
			}
		}
	}
	return append(bad, r.Violations...)
}

func printTable(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "engine × strategy\trotations\tmean rotation\tmode\trequests\tfailed\tlogin refused\tlongest outage\twindow probes failed\tconnections\t")
	for _, c := range r.Cells {
		for i, m := range c.Modes {
			name, rot, mean := c.Engine+" × "+c.Strategy, fmt.Sprint(c.Rotations), c.meanRotation().Round(100*time.Millisecond).String()
			if i > 0 {
				name, rot, mean = "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%d / %d\t%d\t\n", name, rot, mean, m.Mode, m.Requests, m.Failed, m.Refused,
				time.Duration(m.LongestOutageMs*float64(time.Millisecond)).Round(time.Millisecond), m.ProbesFailed, m.Probes, m.Connections)
		}
	}
	_ = tw.Flush()
	for _, c := range r.Cells {
		for _, m := range c.Modes {
			if m.FirstError != "" {
				fmt.Fprintf(w, "%s × %s, %s: failed during %v; first error: %s\n", c.Engine, c.Strategy, m.Mode, m.FailedDuring, m.FirstError)
			}
			if mustNotFail[m.Mode] {
				for _, f := range m.Failures {
					fmt.Fprintf(w, "  %s %s (during %q, login refused: %v): %s\n", c.Engine+" × "+c.Strategy, f.At, f.During, f.Refused, f.Error)
				}
			}
		}
	}
	fmt.Fprintf(w, "invariants after the soak: %d violations; leak scan: %d passwords of %d secrets, %d hits; %s on %d CPUs\n",
		len(r.Violations), r.LeakScan.Passwords, r.LeakScan.Secrets, r.LeakScan.Hits, r.Elapsed, runtime.NumCPU())
}

// meanRotation is the mean wall time of the cell's rotations.
func (c CellResult) meanRotation() time.Duration {
	var sum float64
	for k, n := range c.ByKind {
		sum += c.MeanSeconds[k] * float64(n)
	}
	if c.Rotations == 0 {
		return 0
	}
	return time.Duration(sum / float64(c.Rotations) * float64(time.Second))
}

func writeJSON(path string, r *Result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}
