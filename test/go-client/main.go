// A stand-in for the Higress gateway's plugin downloader (istio-agent): Go's net/http client
// with its defaults, which sends Accept-Encoding: gzip and transparently decompresses. Prints
// what the gateway would check: the status, whether gzip was undone, the wasm magic, the sha256.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
)

type result struct {
	Status       int    `json:"status"`
	Uncompressed bool   `json:"uncompressed"`
	WasmMagic    bool   `json:"wasmMagic"`
	Sha256       string `json:"sha256"`
	Size         int    `json:"size"`
}

func main() {
	resp, err := http.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sum := sha256.Sum256(body)
	out := result{
		Status:       resp.StatusCode,
		Uncompressed: resp.Uncompressed,
		WasmMagic:    bytes.HasPrefix(body, []byte("\x00asm")),
		Sha256:       hex.EncodeToString(sum[:]),
		Size:         len(body),
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
