// A rollout burst as Higress gateways make it: N gateway replicas, each fetching every plugin at
// once with Go's net/http defaults (its own transport per replica, Accept-Encoding: gzip and
// transparent decompression), checking each body against its sha256. With -identity the
// replicas ask for identity bodies. Prints one JSON line: wall time, bytes received, errors.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Ms       int64  `json:"ms"`
	Requests int64  `json:"requests"`
	Bytes    int64  `json:"bytes"`
	Errors   int64  `json:"errors"`
	First    string `json:"firstError,omitempty"`
}

func main() {
	base := flag.String("base", "", "server URL")
	list := flag.String("list", "", "file of '<path> <sha256>' lines")
	clients := flag.Int("clients", 20, "gateway replicas")
	identity := flag.Bool("identity", false, "ask for identity bodies")
	flag.Parse()

	f, err := os.Open(*list)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	type plugin struct{ path, sum string }
	var plugins []plugin
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		parts := strings.Fields(scanner.Text())
		if len(parts) == 2 {
			plugins = append(plugins, plugin{parts[0], parts[1]})
		}
	}

	var out result
	var first atomic.Value
	var wg sync.WaitGroup
	started := time.Now()
	for c := 0; c < *clients; c++ {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.DisableCompression = *identity
		// No overall timeout: with every replica on one client core, the clients are the bottleneck, not the server.
		client := &http.Client{Transport: transport, Timeout: 5 * time.Minute}
		for _, p := range plugins {
			wg.Add(1)
			go func(p plugin) {
				defer wg.Done()
				atomic.AddInt64(&out.Requests, 1)
				fail := func(why string) {
					atomic.AddInt64(&out.Errors, 1)
					first.CompareAndSwap(nil, why)
				}
				resp, err := client.Get(*base + p.path)
				if err != nil {
					fail(err.Error())
					return
				}
				defer resp.Body.Close()
				h := sha256.New()
				n, err := io.Copy(h, resp.Body)
				atomic.AddInt64(&out.Bytes, n)
				if err != nil || resp.StatusCode != 200 {
					fail(fmt.Sprintf("%s: %d %v", p.path, resp.StatusCode, err))
					return
				}
				if hex.EncodeToString(h.Sum(nil)) != p.sum {
					fail(p.path + ": sha256 differs")
				}
			}(p)
		}
	}
	wg.Wait()
	out.Ms = time.Since(started).Milliseconds()
	if v := first.Load(); v != nil {
		out.First = v.(string)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
