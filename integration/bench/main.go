// Command bench is `make bench`: one report of what a rotation costs and
// how fast a fleet goes, measured on the local stand-ins with the real SDK
// clients, the real handlers and the real state machines:
//
//   - wall time of a rotation through the state machine (p50, p99) and per step;
//   - external calls per successful rotation, per service and operation;
//   - state transitions per rotation and the Step Functions Standard cost;
//   - each function's arm64 bootstrap size, and a handler's start-to-ready time;
//   - a fleet of secrets rotated under the Secrets Manager write quota;
//   - Go benchmarks of the in-process hot paths.
//
// The report is printed and written as JSON to results/bench.json.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretsaga/secretsaga/integration/latency"
	"github.com/secretsaga/secretsaga/integration/local"
	"github.com/secretsaga/secretsaga/integration/outage"
	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/fleet"
	"github.com/secretsaga/secretsaga/shared/functions"
)

// Step Functions Standard: $0.025 per 1,000 state transitions (us-east-1).
const dollarsPerTransition = 0.025 / 1000

type stat struct {
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MinMs float64 `json:"minMs"`
	MaxMs float64 `json:"maxMs"`
}

type report struct {
	Machine   string `json:"machine"`
	StartedAt string `json:"startedAt"`
	Rotation  struct {
		Count        int                      `json:"count"`
		Wall         stat                     `json:"wall"`
		Steps        map[string]stat          `json:"steps"`
		Calls        map[string]float64       `json:"callsPerRotation"`
		ByService    map[string]float64       `json:"callsPerRotationByService"`
		SMWrites     float64                  `json:"secretsManagerWritesPerRotation"`
		Logins       float64                  `json:"databaseLoginsPerRotation"`
		Transitions  float64                  `json:"transitionsPerRotation"`
		CostPerK     float64                  `json:"stepFunctionsDollarsPer1000Rotations"`
		StandinReady map[string]time.Duration `json:"standinStartup"`
		Failed       int                      `json:"failed"`
	} `json:"rotation"`
	Bootstraps   map[string]int64 `json:"bootstrapBytes"`
	StartToReady stat             `json:"handlerStartToReady"`
	Fleet        struct {
		Secrets        int           `json:"secrets"`
		Warmup         int           `json:"warmupSecrets"`
		MaxConcurrency int           `json:"maxConcurrency"`
		QuotaRPS       float64       `json:"quotaWritesPerSecond"`
		WallSeconds    float64       `json:"wallSeconds"`
		Writes         int           `json:"writesNeeded"`
		WriteAttempts  int           `json:"writeRequests"`
		Throttled      int           `json:"throttledRequests"`
		BoundSeconds   float64       `json:"quotaBoundSeconds"`
		PercentOfBound float64       `json:"percentOfQuotaBound"`
		Summary        fleet.Summary `json:"summary"`
		ThrottleEnded  int           `json:"rotationsEndedByThrottling"`
		Transitions    int           `json:"transitions"`
		Dollars        float64       `json:"stepFunctionsDollars"`
		// DynamoDBNice is DynamoDB Local's CPU priority during the run
		// (standin.EnvDynamoDBLongRun asks for -10; 0 where refused).
		DynamoDBNice int `json:"dynamoDBLocalNice"`
		// Pages the fleet ran in, and the largest input or output of any
		// state (Step Functions' limit is 256 KiB).
		Pages             int `json:"pages"`
		LargestStateBytes int `json:"largestStateBytes"`
		// Timeline is where the execution's time went (its events);
		// Calls, how long each call the handlers made took, and each
		// handler's run ("Lambda.<function>"), while the fleet ran.
		Timeline timeline     `json:"timeline"`
		Calls    []latency.Op `json:"calls"`
	} `json:"fleet"`
	GoBench []goBench `json:"goBenchmarks"`
}

type goBench struct {
	Name        string  `json:"name"`
	NsPerOp     float64 `json:"nsPerOp"`
	BytesPerOp  float64 `json:"bytesPerOp"`
	AllocsPerOp float64 `json:"allocsPerOp"`
}

func main() {
	rotations := flag.Int("rotations", 30, "rotations through the state machine for the latency figures")
	fleetSize := flag.Int("fleet", 1000, "secrets in the fleet run (0 skips it)")
	flag.IntVar(&warmup, "warmup", 300, "secrets rotated by an unmeasured fleet before the measured one, so that the stand-ins' JITs (DynamoDB Local's above all) are warm, as a running service's are (0: none)")
	concurrency := flag.Int("concurrency", 10, "the fleet's MaxConcurrency (the CDK app reserves 10 concurrent executions for the database-facing functions)")
	quota := flag.Float64("quota", 50, "Secrets Manager write quota, requests per second")
	out := flag.String("out", "results/bench.json", "where the JSON report goes")
	flag.DurationVar(&timeout, "timeout", 30*time.Minute, "the whole run's bound: a fleet of 10,000 needs at least 10 minutes at a 50 writes/s quota, more on a busy machine")
	only := flag.String("only", "", `"fleet": only the fleet's figures (after 3 rotations, which measure the writes a rotation needs); no sizes, start-up or Go benchmarks`)
	cpuProfile := flag.String("cpuprofile", "", "write this process's CPU profile (the in-process stand-ins and handlers; go tool pprof) to the file")
	mutexProfile := flag.String("mutexprofile", "", "write this process's mutex contention profile (which locks of the in-process stand-ins and handlers made goroutines wait; go tool pprof) to the file")
	flag.Parse()
	if *mutexProfile != "" {
		runtime.SetMutexProfileFraction(1)
		defer func() {
			if err := writeProfile("mutex", *mutexProfile); err != nil {
				fmt.Fprintln(os.Stderr, "bench: -mutexprofile:", err)
			}
		}()
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -cpuprofile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	if warmup < 0 {
		fmt.Fprintf(os.Stderr, "bench: -warmup %d: want a number of secrets ≥ 0 (0: no warm-up)\n", warmup)
		os.Exit(2)
	}
	if *only != "" && *only != "fleet" {
		fmt.Fprintf(os.Stderr, "bench: -only %q: the one part that runs alone is \"fleet\"\n", *only)
		os.Exit(2)
	}
	fleetOnly = *only == "fleet"
	// A run of minutes: DynamoDB Local with the JVM's optimizing compiler.
	os.Setenv(standin.EnvDynamoDBLongRun, "1")
	if fleetOnly {
		*rotations = min(*rotations, 3)
	}
	if err := run(*rotations, *fleetSize, *concurrency, *quota, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// fleetOnly (-only fleet) skips the figures the fleet does not need;
// timeout (-timeout) bounds the run; warmup (-warmup) is the size of the
// unmeasured fleet that runs first.
var (
	fleetOnly bool
	timeout   time.Duration
	warmup    int
)

func run(rotations, fleetSize, concurrency int, quota float64, outPath string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var r report
	r.Machine = fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	r.StartedAt = time.Now().UTC().Format(time.RFC3339)

	fmt.Println("starting the local stand-ins ...")
	env, err := local.Start(ctx, local.Options{RetryIntervalScale: 1, SecretsManagerWriteRPS: quota, Latency: &latency.Recorder{}})
	if err != nil {
		return err
	}
	defer env.Close()
	r.Rotation.StandinReady = env.Startup

	if err := rotationFigures(ctx, env, rotations, &r); err != nil {
		return err
	}
	if !fleetOnly {
		r.Bootstraps = bootstraps()
		if r.StartToReady, err = startToReady(ctx, 10); err != nil {
			fmt.Fprintln(os.Stderr, "bench: start-to-ready:", err)
		}
	}
	if fleetSize > 0 {
		if err := fleetFigures(ctx, env, fleetSize, concurrency, quota, &r); err != nil {
			return err
		}
	}
	if !fleetOnly {
		if r.GoBench, err = goBenchmarks(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "bench: go benchmarks:", err)
		}
	}

	printReport(os.Stdout, &r)
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(outPath, append(raw, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nJSON report: %s\n", outPath)
	if r.Rotation.Failed > 0 || r.Fleet.Summary.Total != r.Fleet.Summary.Succeeded {
		return errors.New("some rotations did not succeed; see the report")
	}
	return nil
}

func rotationFigures(ctx context.Context, env *local.Env, n int, r *report) error {
	fmt.Printf("%d rotations through the state machine ...\n", n)
	// The secret names a counting proxy in front of PostgreSQL: every
	// login the product attempts (refused or not) is one connection.
	proxy, err := outage.Start(fmt.Sprintf("%s:%d", env.Postgres.Host, env.Postgres.Port))
	if err != nil {
		return err
	}
	defer proxy.Close()
	value, err := env.PostgresRole(ctx, "bench_latency")
	if err != nil {
		return err
	}
	// tls "disable": with the default (sslmode=prefer, no TLS on the local
	// server) pgx opens a second connection after the server declines TLS,
	// so the proxy would count two per login. In AWS an RDS host defaults to
	// verify-full: one connection per login.
	value["host"], value["port"], value["tls"] = proxy.Host(), proxy.Port(), "disable"
	raw, _ := json.Marshal(value)
	arn, err := env.CreateSecret(ctx, "bench/latency", string(raw), "secretsaga bench: login of role bench_latency, through a counting proxy")
	if err != nil {
		return err
	}
	logins := int64(0)
	var walls []time.Duration
	steps := map[string][]time.Duration{}
	calls := map[string]int{}
	transitions := 0
	for i := range n {
		env.Faults.Reset()
		before := proxy.Accepted()
		x, err := env.Execute(ctx, fmt.Sprintf("bench-%d", i), map[string]any{"SecretId": arn})
		if err != nil {
			return err
		}
		loginsThis := proxy.Accepted() - before
		if x.Status != "SUCCEEDED" {
			r.Rotation.Failed++
			fmt.Fprintf(os.Stderr, "rotation %d: %s %s %s\n", i, x.Status, x.Error, x.Cause)
			continue
		}
		walls = append(walls, x.Duration)
		logins += loginsThis
		transitions += x.Transitions()
		for name, d := range taskDurations(x) {
			steps[name] = append(steps[name], d)
		}
		for _, c := range env.Faults.Calls() {
			calls[c.Name]++
		}
	}
	ok := len(walls)
	if ok == 0 {
		return errors.New("no rotation succeeded")
	}
	r.Rotation.Count = ok
	r.Rotation.Wall = stats(walls)
	r.Rotation.Steps = map[string]stat{}
	for name, ds := range steps {
		r.Rotation.Steps[name] = stats(ds)
	}
	r.Rotation.Calls = map[string]float64{}
	r.Rotation.ByService = map[string]float64{}
	for name, c := range calls {
		per := float64(c) / float64(ok)
		r.Rotation.Calls[name] = per
		svc, _, _ := strings.Cut(name, ".")
		r.Rotation.ByService[svc] += per
	}
	for _, op := range []string{"PutSecretValue", "UpdateSecretVersionStage", "UpdateSecret"} {
		r.Rotation.SMWrites += r.Rotation.Calls["Secrets Manager."+op]
	}
	r.Rotation.Logins = float64(logins) / float64(ok)
	r.Rotation.Transitions = float64(transitions) / float64(ok)
	r.Rotation.CostPerK = r.Rotation.Transitions * dollarsPerTransition * 1000
	return nil
}

// taskDurations pairs each state's StateEntered with its StateExited.
func taskDurations(x *sfnlocal.Execution) map[string]time.Duration {
	entered := map[string]time.Time{}
	out := map[string]time.Duration{}
	for _, ev := range x.Events {
		switch ev.Type {
		case "StateEntered":
			entered[ev.State] = ev.Time
		case "StateExited":
			if t, ok := entered[ev.State]; ok && isTask(ev.State) {
				out[ev.State] += ev.Time.Sub(t)
			}
		}
	}
	return out
}

func isTask(state string) bool {
	switch state {
	case "AcquireLease", "CreateSecret", "SetSecret", "TestSecret", "FinishSecret", "Verify", "ReleaseLease", "Compensate":
		return true
	}
	return false
}

func stats(ds []time.Duration) stat {
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return stat{P50Ms: ms(pct(0.50)), P99Ms: ms(pct(0.99)), MinMs: ms(s[0]), MaxMs: ms(s[len(s)-1])}
}

// sizeVerdict compares a bootstrap with the 10 MB target and with its
// budget (functions.BootstrapBudget, which TestBootstrapSizes enforces).
func sizeVerdict(name string, size int64) string {
	const mb = 1 << 20
	switch budget := functions.BootstrapBudget(name); {
	case size <= functions.MaxBootstrapBytes:
		return fmt.Sprintf("target ≤ %.0f MB: ok", float64(functions.MaxBootstrapBytes)/mb)
	case size <= budget:
		return fmt.Sprintf("target ≤ %.0f MB: OVER by %.2f MB (within its ceiling %.1f MB)", float64(functions.MaxBootstrapBytes)/mb, float64(size-functions.MaxBootstrapBytes)/mb, float64(budget)/mb)
	default:
		return fmt.Sprintf("target ≤ %.0f MB: OVER, and over its ceiling %.1f MB", float64(functions.MaxBootstrapBytes)/mb, float64(budget)/mb)
	}
}

func bootstraps() map[string]int64 {
	out := map[string]int64{}
	root, err := standin.RepoRoot()
	if err != nil {
		return out
	}
	files, _ := filepath.Glob(filepath.Join(root, "build", "lambda", "*", "bootstrap"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			out[filepath.Base(filepath.Dir(f))] = st.Size()
		}
	}
	return out
}

// startToReady builds one handler for this machine and times, over n runs,
// how long the process takes from exec to asking the Lambda Runtime API
// for its first event: the cold-start share that is ours (config, clients).
func startToReady(ctx context.Context, n int) (stat, error) {
	root, err := standin.RepoRoot()
	if err != nil {
		return stat{}, err
	}
	dir, err := os.MkdirTemp("", "secretsaga-bench-")
	if err != nil {
		return stat{}, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bootstrap")
	build := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", bin, "./functions/createsecret")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return stat{}, fmt.Errorf("build: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return stat{}, err
	}
	ready := make(chan struct{}, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasSuffix(req.URL.Path, "/runtime/invocation/next") {
			select {
			case ready <- struct{}{}:
			default:
			}
			<-req.Context().Done() // hold the long poll until the process is killed
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	var ds []time.Duration
	for range n {
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(), "AWS_REGION=us-east-1",
			"LEDGER_TABLE=bench", "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_EC2_METADATA_DISABLED=true")
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return stat{}, err
		}
		select {
		case <-ready:
			ds = append(ds, time.Since(start))
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return stat{}, errors.New("the handler never asked for an event")
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return stats(ds), nil
}

func fleetFigures(ctx context.Context, env *local.Env, size, concurrency int, quota float64, r *report) error {
	const group, warmGroup = "bench-fleet", "bench-warmup"
	warm := warmup
	fmt.Printf("creating %d secrets and PostgreSQL roles for the fleet (and %d for its warm-up) ...\n", size, warm)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= size+warm {
					return
				}
				g := group
				if i >= size {
					g = warmGroup
				}
				arn, err := fleetSecret(ctx, env, i)
				if err == nil {
					_, err = env.SMClient.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: &arn,
						Tags: []smtypes.Tag{{Key: aws.String("secretsaga:rotation-group"), Value: aws.String(g)}}})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if warm > 0 {
		// A fleet of its own: the measured one lists only its group, and
		// every counter is reset below.
		fmt.Printf("warm-up: a fleet of %d secrets, not measured ...\n", warm)
		if _, err := runFleet(ctx, env, warmGroup, concurrency); err != nil {
			return err
		}
	}
	fmt.Printf("fleet rotation: %d secrets, MaxConcurrency %d, quota %.0f writes/s ...\n", size, concurrency, quota)
	env.Faults.Reset()
	env.SM.ResetCalls()
	env.Latency().Reset()
	x, err := runFleet(ctx, env, group, concurrency)
	if err != nil {
		return err
	}
	f := &r.Fleet
	if err := json.Unmarshal(x.Output, &f.Summary); err != nil {
		return err
	}
	f.Secrets, f.Warmup, f.MaxConcurrency, f.QuotaRPS = size, warm, concurrency, quota
	f.WallSeconds = x.Duration.Seconds()
	calls := env.SM.Calls()
	f.WriteAttempts = calls["PutSecretValue"] + calls["UpdateSecretVersionStage"] + calls["UpdateSecret"]
	// The bound counts the writes the work needs (per rotation, as measured
	// above), not the requests made: a throttled request that is retried
	// is the price of going at the quota, not work.
	f.Writes = int(float64(f.Summary.Succeeded)*r.Rotation.SMWrites + 0.5)
	f.Throttled = f.WriteAttempts - f.Writes
	f.BoundSeconds = float64(f.Writes) / quota
	f.PercentOfBound = 100 * f.BoundSeconds / f.WallSeconds
	for _, fl := range f.Summary.Failures {
		if strings.Contains(fl.Error, "Throttl") || fl.Error == "RetryableError" {
			f.ThrottleEnded++
		}
	}
	if env.DynamoDB != nil {
		if n, err := env.DynamoDB.Nice(); err == nil {
			f.DynamoDBNice = n
		}
	}
	f.Transitions = x.Transitions()
	for _, e := range x.Events {
		if e.Type == "StateEntered" && e.State == "ListSecrets" {
			f.Pages++
		}
		f.LargestStateBytes = max(f.LargestStateBytes, e.InputBytes, e.OutputBytes)
	}
	f.Dollars = float64(f.Transitions) * dollarsPerTransition
	f.Timeline = fleetTimeline(x.Events, "RotateEach", 10)
	f.Timeline.addCalls(env.Latency())
	f.Calls = env.Latency().Ops()
	return nil
}

// fleetSecret creates the fleet's i-th secret and its PostgreSQL role.
// Its tls is "disable", as the latency figures' secret's: with the
// default (sslmode=prefer) pgx opens a second connection to the local
// server, which has no TLS, after it declines TLS, so every login would
// fork two PostgreSQL backends (~12 ms of the server's CPU instead of ~8)
// where an RDS host (verify-full) takes one: on a 2-core machine the
// fleet would pay for work AWS does not do.
// runFleet runs one fleet execution, named after group, over the secrets
// tagged with it, and fails unless it succeeded.
func runFleet(ctx context.Context, env *local.Env, group string, concurrency int) (*sfnlocal.Execution, error) {
	x, err := env.ExecuteFleet(ctx, group, map[string]any{
		"TagKey": "secretsaga:rotation-group", "TagValue": group, "MaxConcurrency": concurrency,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet %s: %w", group, err)
	}
	if x.Status != "SUCCEEDED" {
		return nil, fmt.Errorf("fleet %s ended %s %s: %s", group, x.Status, x.Error, x.Cause)
	}
	return x, nil
}

func fleetSecret(ctx context.Context, env *local.Env, i int) (string, error) {
	role := fmt.Sprintf("bench_fleet_%05d", i)
	value, err := env.PostgresRole(ctx, role)
	if err != nil {
		return "", err
	}
	value["tls"] = "disable"
	raw, _ := json.Marshal(value)
	return env.CreateSecret(ctx, fmt.Sprintf("bench/fleet/%05d", i), string(raw), "secretsaga bench: login of role "+role)
}

func goBenchmarks(ctx context.Context) ([]goBench, error) {
	root, err := standin.RepoRoot()
	if err != nil {
		return nil, err
	}
	fmt.Println("Go benchmarks of the in-process hot paths ...")
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", "1s",
		"./shared/secret", "./shared/ledger", "./shared/target/postgres")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var res []goBench
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		b := goBench{Name: strings.TrimSuffix(f[0], "-"+strconv.Itoa(runtime.GOMAXPROCS(0)))}
		for i := 2; i+1 < len(f); i += 2 {
			v, _ := strconv.ParseFloat(f[i], 64)
			switch f[i+1] {
			case "ns/op":
				b.NsPerOp = v
			case "B/op":
				b.BytesPerOp = v
			case "allocs/op":
				b.AllocsPerOp = v
			}
		}
		res = append(res, b)
	}
	return res, nil
}

// writeProfile writes the named runtime profile to path.
func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func printReport(w io.Writer, r *report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "\n== secretsaga bench (%s) ==\nmachine: %s\n", r.StartedAt, r.Machine)

	fmt.Fprintf(tw, "\n-- one rotation through the state machine (%d runs) --\n", r.Rotation.Count)
	fmt.Fprintf(tw, "wall\tp50 %.1f ms\tp99 %.1f ms\tmin %.1f ms\tmax %.1f ms\n", r.Rotation.Wall.P50Ms, r.Rotation.Wall.P99Ms, r.Rotation.Wall.MinMs, r.Rotation.Wall.MaxMs)
	for _, name := range []string{"AcquireLease", "CreateSecret", "SetSecret", "TestSecret", "FinishSecret", "ReleaseLease"} {
		if s, ok := r.Rotation.Steps[name]; ok {
			fmt.Fprintf(tw, "  %s\tp50 %.1f ms\tp99 %.1f ms\n", name, s.P50Ms, s.P99Ms)
		}
	}
	fmt.Fprintf(tw, "\n-- external calls per successful rotation --\n")
	names := make([]string, 0, len(r.Rotation.Calls))
	for n := range r.Rotation.Calls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(tw, "  %s\t%.1f\n", n, r.Rotation.Calls[n])
	}
	svcs := make([]string, 0, len(r.Rotation.ByService))
	for s := range r.Rotation.ByService {
		svcs = append(svcs, s)
	}
	sort.Strings(svcs)
	for _, s := range svcs {
		fmt.Fprintf(tw, "total %s\t%.1f\n", s, r.Rotation.ByService[s])
	}
	fmt.Fprintf(tw, "Secrets Manager writes\t%.1f (must be ≤ 3)\n", r.Rotation.SMWrites)
	// Issue 15's lean-path targets, per successful (first-attempt) rotation.
	for _, t := range []struct {
		what       string
		got, limit float64
	}{
		{"Secrets Manager calls", r.Rotation.ByService["Secrets Manager"], 9},
		{"DynamoDB calls", r.Rotation.ByService["DynamoDB"], 9},
		{"database logins (the change included)", r.Rotation.Logins, 3},
	} {
		verdict := "meets"
		if t.got > t.limit {
			verdict = "OVER"
		}
		fmt.Fprintf(tw, "%s\t%.1f, target ≤ %.0f: %s\n", t.what, t.got, t.limit, verdict)
	}
	fmt.Fprintf(tw, "state transitions\t%.1f per rotation → $%.4f per 1,000 rotations (Standard, $0.025 per 1,000 transitions)\n", r.Rotation.Transitions, r.Rotation.CostPerK)

	if fleetOnly {
		printFleet(tw, r)
		return
	}
	fmt.Fprintf(tw, "\n-- Lambda artifacts (linux/arm64) --\n")
	fns := make([]string, 0, len(r.Bootstraps))
	for f := range r.Bootstraps {
		fns = append(fns, f)
	}
	sort.Strings(fns)
	for _, f := range fns {
		fmt.Fprintf(tw, "  %s/bootstrap\t%.2f MB\t%s\n", f, float64(r.Bootstraps[f])/(1<<20), sizeVerdict(f, r.Bootstraps[f]))
	}
	if len(fns) == 0 {
		fmt.Fprintln(tw, "  (no build/lambda/*/bootstrap: run make build)")
	}
	fmt.Fprintf(tw, "handler start-to-ready (createsecret, native build, exec → first Runtime API poll)\tp50 %.1f ms\tp99 %.1f ms\n", r.StartToReady.P50Ms, r.StartToReady.P99Ms)

	printFleet(tw, r)
	if len(r.GoBench) > 0 {
		fmt.Fprintf(tw, "\n-- Go benchmarks --\n")
		for _, b := range r.GoBench {
			fmt.Fprintf(tw, "  %s\t%.0f ns/op\t%.0f B/op\t%.0f allocs/op\n", b.Name, b.NsPerOp, b.BytesPerOp, b.AllocsPerOp)
		}
	}
}

// fleetTargetPercent is issue 15's target for a fleet: its wall time
// within 95 % of the quota bound (a 10,000-secret fleet in at most 632 s
// at 50 writes/s), with no rotation ended by throttling.
const fleetTargetPercent = 95.0

// verdict names whether a figure meets its target, in the words of the
// lean-path lines.
func verdict(ok bool) string {
	if ok {
		return "meets"
	}
	return "MISSES"
}

func printFleet(tw io.Writer, r *report) {
	if f := r.Fleet; f.Secrets > 0 {
		fmt.Fprintf(tw, "\n-- fleet: %d secrets, MaxConcurrency %d, write quota %.0f/s (after an unmeasured warm-up fleet of %d) --\n", f.Secrets, f.MaxConcurrency, f.QuotaRPS, f.Warmup)
		fmt.Fprintf(tw, "outcome\t%s\n", f.Summary)
		fmt.Fprintf(tw, "wall time\t%.1f s\n", f.WallSeconds)
		fmt.Fprintf(tw, "Secrets Manager writes\t%d needed (%.0f per rotation), %d requests: %d throttled and retried\n", f.Writes, r.Rotation.SMWrites, f.WriteAttempts, f.Throttled)
		fmt.Fprintf(tw, "quota bound (writes / quota)\t%.1f s → %.0f%% of the bound, target ≥ %.0f%%: %s\n", f.BoundSeconds, f.PercentOfBound,
			fleetTargetPercent, verdict(f.PercentOfBound >= fleetTargetPercent))
		if n := f.Summary.FailuresNotListed; n > 0 {
			fmt.Fprintf(tw, "rotations ended by throttling\t%d of the %d failures listed (%d more not listed), target 0: %s\n", f.ThrottleEnded, len(f.Summary.Failures), n, verdict(f.ThrottleEnded == 0))
		} else {
			fmt.Fprintf(tw, "rotations ended by throttling\t%d, target 0: %s\n", f.ThrottleEnded, verdict(f.ThrottleEnded == 0))
		}
		if f.DynamoDBNice < 0 {
			fmt.Fprintf(tw, "DynamoDB Local's CPU priority\tnice %d (raised: see README, Performance)\n", f.DynamoDBNice)
		} else {
			fmt.Fprintf(tw, "DynamoDB Local's CPU priority\tnice %d (not raised: run as root for nice -10; the fleet's rate is lower without it)\n", f.DynamoDBNice)
		}
		fmt.Fprintf(tw, "state transitions\t%d → $%.2f\n", f.Transitions, f.Dollars)
		fmt.Fprintf(tw, "pages, largest state\t%d, %d bytes (the limit: %d)\n", f.Pages, f.LargestStateBytes, sfnlocal.MaxPayloadBytes)
		printTimeline(tw, f.Timeline)
		if len(f.Calls) > 0 {
			fmt.Fprintf(tw, "calls during the fleet\tcalls\tattempts\tp50 ms\tp90 ms\tp99 ms\tmax ms\ttotal s\terrors\n")
			for _, c := range f.Calls {
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%v\n", c.Name, c.Calls, c.Attempts, c.P50Ms, c.P90Ms, c.P99Ms, c.MaxMs, c.Seconds, c.Errors)
			}
		}
	}
}
