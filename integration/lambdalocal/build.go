package lambdalocal

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// RIEPackage is the Lambda Runtime Interface Emulator's command, a tool of
// this module (go.mod), built by BuildRIE.
const RIEPackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// BuildBootstraps builds the main packages pkgs (import paths, such as
// "github.com/secretsaga/secretsaga/functions/verify") into dir, each as
// dir/<last path element>, the way the Makefile builds the deployed
// bootstraps (-tags lambda.norpc,otel: with tracing, as make build
// builds them by default; static, trimmed) but for this machine's
// GOOS and GOARCH, so that they run here. It runs the go command of this
// toolchain in the current module; its build cache makes a rebuild quick.
func BuildBootstraps(ctx context.Context, dir string, pkgs ...string) error {
	args := append([]string{"build", "-tags", "lambda.norpc,otel", "-trimpath", "-o", dir + string(filepath.Separator)}, pkgs...)
	return goCmd(ctx, args...)
}

// BuildRIE builds aws-lambda-rie into dir and returns its path.
func BuildRIE(ctx context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "aws-lambda-rie")
	return path, goCmd(ctx, "build", "-o", path, RIEPackage)
}

func goCmd(ctx context.Context, args ...string) error {
	// go test puts its toolchain's bin first in PATH.
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %v: %w\n%s", args, err, out.String())
	}
	return nil
}
