// Command apibare is the peer of `make bench-api`: a bare net/http JSON
// handler that does one SQLite WAL insert per request (modernc.org/sqlite,
// the driver callpath uses), the figure DESIGN §6 compares the CAMARA API
// with.
//
//	go run ./bench/apibare -listen 127.0.0.1:26180 -db /tmp/bare.db
package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	_ "modernc.org/sqlite"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:26180", "address to serve")
	path := flag.String("db", "", "SQLite file (created)")
	flag.Parse()
	if *path == "" {
		fmt.Fprintln(os.Stderr, "apibare: -db is required")
		os.Exit(2)
	}
	db, err := sql.Open("sqlite", "file:"+*path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one writer, as SQLite allows
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS item (id TEXT PRIMARY KEY, body BLOB NOT NULL, created_at TEXT NOT NULL)`); err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
			http.Error(w, `{"status":400,"code":"INVALID_ARGUMENT","message":"bad JSON"}`, http.StatusBadRequest)
			return
		}
		var id [12]byte
		_, _ = rand.Read(id[:])
		raw, _ := json.Marshal(body)
		if _, err := db.ExecContext(r.Context(), `INSERT INTO item (id, body, created_at) VALUES (?, ?, ?)`,
			hex.EncodeToString(id[:]), raw, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			http.Error(w, `{"status":500,"code":"INTERNAL","message":"insert"}`, http.StatusInternalServerError)
			return
		}
		body["id"] = hex.EncodeToString(id[:])
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(body)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
