// Package dnstest runs a real DNS server for tests: Debian's dnsmasq on a
// free port of 127.0.0.1, answering only the records a test gives it.
package dnstest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// readyName is always served; Start polls it to know dnsmasq is up.
const readyName = "ready.dnstest.test"

// Start runs dnsmasq with records (dnsmasq options such as
// "--srv-host=_sips._tcp.tas.test,tas-a.test,5071,10,50" and
// "--host-record=tas-a.test,127.0.0.2"), authoritative for the "test."
// domain: every other name under it is NXDOMAIN, and nothing is forwarded.
// It returns a resolver that asks only this server, and the server's
// address. dnsmasq is stopped when the test ends.
func Start(t testing.TB, records ...string) (*net.Resolver, string) {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/dnsmasq"); err != nil {
			t.Fatal("dnsmasq is not installed: run scripts/deps.sh (it installs dnsmasq-base)")
		}
	}
	// The port is free when we look; dnsmasq may still lose it to someone
	// else before it binds, then it exits and we try another.
	var lastErr error
	for range 5 {
		r, server, err := try(t, bin, records)
		if err == nil {
			return r, server
		}
		lastErr = err
	}
	t.Fatalf("dnsmasq did not start: %v", lastErr)
	return nil, ""
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func try(t testing.TB, bin string, records []string) (*net.Resolver, string, error) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	_ = pc.Close()
	args := append([]string{
		"--keep-in-foreground", "--port=" + strconv.Itoa(port),
		"--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
		"--log-facility=-", "--local=/test/", "--cache-size=0",
		"--host-record=" + readyName + ",127.0.0.1",
	}, records...)
	cmd := exec.Command(bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	server := "127.0.0.1:" + strconv.Itoa(port)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, server)
	}}
	deadline := time.After(5 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := r.LookupNetIP(ctx, "ip4", readyName)
		cancel()
		if err == nil {
			t.Cleanup(stop)
			return r, server, nil
		}
		select {
		case <-exited:
			return nil, "", errors.New("dnsmasq exited: " + out.String())
		case <-deadline:
			stop()
			return nil, "", errors.New("dnsmasq not answering after 5 s: " + err.Error() + "\n" + out.String())
		case <-poll.C:
		}
	}
}
