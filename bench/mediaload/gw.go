package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// gateway is a running mediagw process.
type gateway struct {
	cmd  *exec.Cmd
	base string
	http *http.Client
}

// startGateway runs the gateway binary in mode and waits for its address.
func startGateway(bin, mode string) (*gateway, error) {
	cmd := exec.Command(bin, append([]string{"-mode", mode}, strings.Fields(os.Getenv("MEDIAGW_FLAGS"))...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	lines := bufio.NewScanner(stdout)
	ready := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if addr, ok := strings.CutPrefix(lines.Text(), "listening "); ok {
				ready <- addr
			}
		}
	}()
	select {
	case addr := <-ready:
		return &gateway{cmd: cmd, base: "http://" + addr, http: &http.Client{Timeout: 30 * time.Second}}, nil
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s did not start", bin)
	}
}

func (g *gateway) stop() {
	_ = g.cmd.Process.Kill()
	_ = g.cmd.Wait()
}

// call POSTs req to path and decodes the answer into resp.
func (g *gateway) call(ctx context.Context, method, path string, req, resp any) error {
	var body io.Reader
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	r, err := http.NewRequestWithContext(ctx, method, g.base+path, body)
	if err != nil {
		return err
	}
	res, err := g.http.Do(r)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(res.Body)
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(msg))
	}
	return json.NewDecoder(res.Body).Decode(resp)
}

// gwStats mirrors mediagw's Stats.
type gwStats struct {
	CPUNanos   int64  `json:"cpu_ns"`
	Mallocs    uint64 `json:"mallocs"`
	PacketsOut uint64 `json:"packets_out"`
}

func (g *gateway) stats(ctx context.Context) (gwStats, error) {
	var s gwStats
	err := g.call(ctx, http.MethodGet, "/stats", nil, &s)
	return s, err
}

// save writes the body of GET path to file (a profile).
func (g *gateway) save(ctx context.Context, path, file string) error {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+path, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	res, err := client.Do(r)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return err
}
