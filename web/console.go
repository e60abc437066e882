// Package console serves Weft's web console: a small TypeScript app, built
// into dist/ (see docs/console.md) and embedded in the binary, that talks
// to the Connect API from the browser like any other client.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// AssetPrefix is where the console's assets are served. Their names carry
// a hash of their contents, so they are cached for good.
const AssetPrefix = "/console/assets/"

// page is index.html with its ETag.
type page struct {
	body []byte
	etag string
}

// Wrap returns a handler that serves the console's pages and assets and
// passes every other request to next. The pages are GET or HEAD requests
// to / (the runs), /workflows/<id>, /definitions, /definitions/<name> and
// /triggers: each is index.html, and the app shows the page the path names,
// so a deep link works on reload. Pages and assets carry no data, so they
// are served without a token even when next requires one.
func Wrap(next http.Handler) http.Handler {
	assets, err := fs.Sub(dist, "dist/assets")
	if err != nil {
		panic(err)
	}
	body, err := fs.ReadFile(dist, "dist/index.html")
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(body)
	index := page{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	files := http.FileServerFS(assets)
	zipped, err := gzipAll(assets)
	if err != nil {
		panic(err)
	}
	return &console{next: next, index: index, files: files, zipped: zipped}
}

// console serves the pages and assets, and passes every other request on.
type console struct {
	next   http.Handler
	index  page
	files  http.Handler
	zipped map[string][]byte
}

// ServeHTTP passes API calls straight on, with its own frame kept small:
// an AwaitWorkflow call stays parked on top of it, and a parked call's
// stack below 4 KiB lets the runtime halve it to 8 KiB.
func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && c.serve(w, r) {
		return
	}
	c.next.ServeHTTP(w, r)
}

// serve serves r if it asks for a page or an asset, and says whether it did.
//
//go:noinline
func (c *console) serve(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	switch {
	case isPage(p):
		c.index.serve(w, r)
	case strings.HasPrefix(p, AssetPrefix):
		name := strings.TrimPrefix(p, AssetPrefix)
		if name == "" || strings.Contains(name, "/") || path.Clean(p) != p {
			http.NotFound(w, r)
			return true
		}
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Vary", "Accept-Encoding")
		if z, ok := c.zipped[name]; ok && acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(z))
			return true
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		c.files.ServeHTTP(w, r2)
	default:
		return false
	}
	return true
}

// gzipAll compresses every file of assets once, for the clients that take
// gzip: the script is about a quarter of its size then.
func gzipAll(assets fs.FS) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := fs.WalkDir(assets, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, name)
		if err != nil {
			return err
		}
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		if _, err := zw.Write(b); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		out[name] = z.Bytes()
		return nil
	})
	return out, err
}

// acceptsGzip reports whether r's Accept-Encoding takes gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// isPage reports whether p is the path of one of the console's pages.
func isPage(p string) bool {
	switch p {
	case "/", "/definitions", "/triggers":
		return true
	}
	for _, prefix := range []string{"/workflows/", "/definitions/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			return rest != "" && !strings.Contains(rest, "/")
		}
	}
	return false
}

// csp allows the page only its own scripts, styles and API.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (p page) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("ETag", p.etag)
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(p.body))
}
