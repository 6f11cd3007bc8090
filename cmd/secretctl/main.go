// Command secretctl is the operator CLI of secretsaga: status, history,
// rotate, audit, compliance and get. See cmd/secretctl/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/secretsaga/secretsaga/cmd/secretctl/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, newDeps(ctx))
	stop()
	os.Exit(code)
}
