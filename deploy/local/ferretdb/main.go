// Command ferretdb runs an embedded FerretDB (MongoDB wire protocol over SQLite) for local
// development and tests. Embedding the library avoids the CLI's build-version file check, which
// panics when the binary is built outside FerretDB's own release process.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with -debug-addr
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("sqlite-dir", "data", "directory holding one SQLite file per database")
	level := flag.String("log-level", "warn", "debug, info, warn or error")
	debug := flag.String("debug-addr", "", "if set, serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060")
	flag.Parse()

	if *debug != "" {
		go func() { log.Print(http.ListenAndServe(*debug, nil)) }() //nolint:gosec // a local developer's profiler
	}

	if err := os.MkdirAll(*dir, 0o700); err != nil {
		log.Fatalf("create %s: %v", *dir, err)
	}

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		log.Fatalf("log level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger.Info("ferretdb listening", "addr", *listen, "dir", *dir)
	if err := f.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
