// Command callpath runs the gateway. It only parses flags, loads the config,
// wires the app and handles signals; everything else lives in packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"callpath/app"
	"callpath/conf"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "config":
		// Prints the embedded defaults: a starting point for a config file.
		_, _ = stdout.Write(conf.DefaultYAML())
		return 0
	case "version":
		fmt.Fprintln(stdout, "callpath", version)
		return 0
	default:
		fmt.Fprintf(stderr, "callpath: unknown command %q (want serve, config or version)\n", cmd)
		return 2
	}
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file (default: the embedded defaults)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := conf.Load(*configPath, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "callpath: %v\n", err)
		return 2
	}
	cfg.ApplyRuntime()
	log := app.NewLogger(cfg.Log, stderr)

	// SIGTERM drains calls; SIGINT, or a second signal, stops at once. The
	// handler is in place before anything listens, so a signal that comes
	// right after start-up is not the default "terminate now".
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	ctx := context.Background()
	gw, err := app.New(ctx, cfg, log)
	if err != nil {
		log.WithError(err).Error("cannot build gateway")
		return 1
	}
	if err := gw.Start(ctx); err != nil {
		log.WithError(err).Error("cannot start gateway")
		_ = gw.Shutdown(ctx, false, 0)
		return 1
	}

	sig := <-signals
	graceful := sig == syscall.SIGTERM
	log.WithField("signal", sig.String()).Info("stopping")
	stopCtx, cancel := context.WithCancel(ctx)
	go func() {
		<-signals
		log.Warn("second signal: stopping at once")
		cancel()
	}()
	if err := gw.Shutdown(stopCtx, graceful, cfg.Shutdown.DrainTimeout); err != nil && !errors.Is(err, context.Canceled) {
		log.WithError(err).Warn("shutdown finished with errors")
		return 1
	}
	return 0
}
