package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"callpath/app"
)

// relayCommand runs the notification relay on its own (relay.listen), as an
// app provider does; it uses the store, auth, log and relay sections of the
// config:
//
//	callpath relay -config relay.yaml
//
// SIGTERM or SIGINT closes the sockets with 1001 (going away) and stops; a
// second signal stops at once.
func relayCommand(args []string, stderr io.Writer) int {
	fs, configPath := flagSet("relay", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, ok := loadConfig(*configPath, stderr)
	if !ok {
		return 2
	}
	cfg.ApplyRuntime()
	log := app.NewLogger(cfg.Log, stderr)
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	ctx := context.Background()
	srv, err := app.NewRelayServer(ctx, cfg, log)
	if err != nil {
		log.WithError(err).Error("cannot build the relay")
		return 1
	}
	if err := srv.Start(ctx); err != nil {
		log.WithError(err).Error("cannot start the relay")
		_ = srv.Shutdown(ctx)
		return 1
	}
	sig := <-signals
	log.WithField("signal", sig.String()).Info("stopping")
	stopCtx, cancel := context.WithTimeout(ctx, cfg.Shutdown.DrainTimeout)
	defer cancel()
	go func() {
		<-signals
		log.Warn("second signal: stopping at once")
		cancel()
	}()
	if err := srv.Shutdown(stopCtx); err != nil && !errors.Is(err, context.Canceled) {
		log.WithError(err).Warn("shutdown finished with errors")
		return 1
	}
	return 0
}
