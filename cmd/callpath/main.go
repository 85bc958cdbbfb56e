// Command callpath runs the gateway. It only parses flags, loads the config,
// wires the app and handles signals; everything else lives in packages.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"callpath/app"
	"callpath/auth"
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
	case "token":
		return token(args, stdout, stderr)
	case "route":
		return route(args, stdout, stderr)
	case "relay":
		return relayCommand(args, stderr)
	default:
		fmt.Fprintf(stderr, "callpath: unknown command %q (want serve, relay, config, token, route or version)\n", cmd)
		return 2
	}
}

// route explain prints what the gateway of the config would do with a call
// from one number to another: the registrations that apply and the legs it
// would create. It reads the same store as the gateway (safe while it runs).
//
//	callpath route explain -from +4790000001 -to +4790000002
func route(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "explain" {
		fmt.Fprintln(stderr, "callpath route: want \"route explain -from NUMBER -to NUMBER\"")
		return 2
	}
	fs, configPath := flagSet("route explain", stderr)
	from := fs.String("from", "", "caller, E.164")
	to := fs.String("to", "", "callee, E.164")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *from == "" || *to == "" {
		fmt.Fprintln(stderr, "callpath route explain: -from and -to are required")
		return 2
	}
	cfg, ok := loadConfig(*configPath, stderr)
	if !ok {
		return 2
	}
	log := app.NewLogger(conf.Log{Level: "warn", Format: cfg.Log.Format}, stderr)
	gw, err := app.New(context.Background(), cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "callpath route explain: %v\n", err)
		return 1
	}
	defer func() { _ = gw.Shutdown(context.Background(), false, 0) }()
	e := gw.Explain(*from, *to)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(e)
		return 0
	}
	fmt.Fprintf(stdout, "call %s -> %s\n", e.From, e.To)
	if len(e.Registrations) == 0 {
		fmt.Fprintln(stdout, "registrations: none apply")
	}
	for _, r := range e.Registrations {
		fmt.Fprintln(stdout, "registration: "+r)
	}
	for _, l := range e.Legs {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintln(stdout, "result: "+e.Result)
	return 0
}

// token mints a bearer token with the dev issuer of the config (the same
// key file the gateway uses), for labs and tests:
//
//	callpath token -sub tas-provider -scope call.routing:write
//	callpath token -sub user-1 -phone +4790000001
func token(args []string, stdout, stderr io.Writer) int {
	fs, configPath := flagSet("token", stderr)
	sub := fs.String("sub", "", "subject: the client id, or the user for a user token (required)")
	phone := fs.String("phone", "", "E.164 number: makes a user token for that number")
	scope := fs.String("scope", "call.routing:write", "space-separated scopes")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *sub == "" {
		fmt.Fprintln(stderr, "callpath token: -sub is required")
		return 2
	}
	cfg, ok := loadConfig(*configPath, stderr)
	if !ok {
		return 2
	}
	if !cfg.Auth.DevIssuer.Enabled {
		fmt.Fprintln(stderr, "callpath token: auth.dev_issuer is not enabled in this config")
		return 2
	}
	d, err := auth.LoadOrCreateDevIssuer(cfg.DevIssuerKeyFile(), cfg.Auth.Issuer, cfg.Auth.Audience)
	if err != nil {
		fmt.Fprintf(stderr, "callpath token: %v\n", err)
		return 1
	}
	tok, err := d.Mint(auth.Token{Subject: *sub, PhoneNumber: *phone, Scopes: strings.Fields(*scope), TTL: *ttl})
	if err != nil {
		fmt.Fprintf(stderr, "callpath token: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

func serve(args []string, stderr io.Writer) int {
	fs, configPath := flagSet("serve", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, ok := loadConfig(*configPath, stderr)
	if !ok {
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

// flagSet is a subcommand's flags with the -config every one takes.
func flagSet(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, fs.String("config", "", "YAML config file (default: the embedded defaults)")
}

// loadConfig loads the config file (or the embedded defaults) with the
// environment's overrides; on error it says why, naming the key.
func loadConfig(path string, stderr io.Writer) (*conf.Config, bool) {
	cfg, err := conf.Load(path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "callpath: %v\n", err)
		return nil, false
	}
	return cfg, true
}
