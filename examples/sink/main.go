// Command sink is a stand-in HTTP service for trying the examples. It
// answers every request with 200 and a JSON echo of what it received, and
// prints one line per request with its Idempotency-Key and how many times
// that key has been seen.
//
// Two query parameters change the answer, to watch Weft retry and fail:
//
//	?fail=N     answer 503 to the first N requests of each Idempotency-Key
//	?status=C   always answer with status C (e.g. 404, which is not retried)
//
// Usage:
//
//	go run ./examples/sink                 # listens on 127.0.0.1:9000
//	go run ./examples/sink -addr :9100
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"sync"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	flag.Parse()

	var mu sync.Mutex
	seen := map[string]int{}
	handler := func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		seen[key]++
		try := seen[key]
		mu.Unlock()

		raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var body any
		if json.Unmarshal(raw, &body) != nil && len(raw) > 0 {
			body = string(raw)
		}
		status := http.StatusOK
		if n, err := strconv.Atoi(r.URL.Query().Get("fail")); err == nil && try <= n {
			status = http.StatusServiceUnavailable
		}
		if c, err := strconv.Atoi(r.URL.Query().Get("status")); err == nil && c >= 200 && c <= 599 {
			status = c
		}
		log.Printf("%s %s key=%q try=%d -> %d %s", r.Method, r.URL.Path, key, try, status, raw)

		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"ok":              status < 300,
			"path":            r.URL.Path,
			"idempotency_key": key,
			"try":             try,
			"received":        body,
		})
	}
	log.Printf("sink listening on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(handler)))
}
