// Command eventload measures CloudEvents delivered per second from the
// durable outbox to local HTTPS sinks (DESIGN §6: ≥ 5,000 events/s): it
// enqueues N events spread over K sinks (each sink its own order) into a
// fresh SQLite store, runs callpath's deliverer against a loopback HTTPS
// server that answers 204, and times until the sink has received them all
// (then checks the outbox is empty).
//
//	go run ./bench/eventload -n 50000 -sinks 64 -workers 16
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"callpath/delivery"
	"callpath/store"
)

func main() {
	n := flag.Int("n", 50000, "events")
	sinks := flag.Int("sinks", 64, "sinks (distinct URLs; each delivered in order, one at a time)")
	workers := flag.Int("workers", delivery.DefaultWorkers, "deliverer workers")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the delivery here")
	flag.Parse()

	dir, err := os.MkdirTemp("", "eventload")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "events.db"), store.Options{Logger: logrus.NewEntry(quiet)})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	cert, pool := selfSigned()
	var received atomic.Int64
	allReceived := make(chan struct{})
	ln, err := tls.Listen("tcp4", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		if received.Add(1) == int64(*n) {
			close(allReceived)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "https://" + ln.Addr().String() + "/sink/"

	body := []byte(`{"id":"x","source":"urn:callpath:bench","type":"org.camaraproject.webrtc-events.v0.registration-ends","specversion":"1.0","datacontenttype":"application/json","time":"2026-11-22T12:00:00Z","data":{"registrationId":"r","terminationReason":"REGISTRATION_EXPIRED"}}`)
	t0 := time.Now()
	const batch = 1000
	for i := 0; i < *n; i += batch {
		err := db.Update(ctx, func(tx *store.Tx) error {
			for j := i; j < i+batch && j < *n; j++ {
				k := strconv.Itoa(j % *sinks)
				if err := tx.Enqueue(store.OutboxEvent{EventID: "ev-" + strconv.Itoa(j), SubscriptionID: "sub-" + k,
					Sink: base + k, SinkToken: "t", Type: "bench", Body: body}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	enqueued := time.Since(t0)

	d := delivery.New(db, delivery.Options{
		Policy:  delivery.SinkPolicy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		RootCAs: pool, Workers: *workers, Logger: logrus.NewEntry(quiet),
	})
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { _ = d.Run(runCtx); close(done) }()
	d.Notify()
	// The sink has every event once its handler saw the last one; the
	// deliverer then removes the last rows from the outbox.
	<-allReceived
	took := time.Since(start)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		live, _, err := db.OutboxDepth(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if live == 0 {
			break
		}
	}
	stop()
	<-done
	fmt.Printf("%d events over %d sinks, %d workers: enqueued in %.2f s (%.0f/s, batches of %d); delivered in %.2f s: %.0f events/s; sink received %d\n",
		*n, *sinks, *workers, enqueued.Seconds(), float64(*n)/enqueued.Seconds(), batch, took.Seconds(), float64(*n)/took.Seconds(), received.Load())
}

// selfSigned is a certificate for 127.0.0.1 and the pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
