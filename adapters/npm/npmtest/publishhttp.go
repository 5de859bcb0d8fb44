package npmtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"time"
)

// publishHTTP sends the request `npm publish` sends (PUT /<package> with the
// manifest and the tarball attached), without npm's start-up cost.
func (r *Registry) publishHTTP(ctx context.Context, dir string, manifest map[string]any, tag string) error {
	name, version := manifest["name"].(string), manifest["version"].(string)
	tgz, err := packDir(dir)
	if err != nil {
		return err
	}
	sum512 := sha512.Sum512(tgz)
	sum1 := sha1.Sum(tgz)
	file := path.Base(name) + "-" + version + ".tgz"
	vm := map[string]any{}
	for k, v := range manifest {
		vm[k] = v
	}
	vm["_id"] = name + "@" + version
	vm["dist"] = map[string]any{
		"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sum512[:]),
		"shasum":    hex.EncodeToString(sum1[:]),
		"tarball":   r.URL + name + "/-/" + file,
	}
	body, err := json.Marshal(map[string]any{
		"_id":       name,
		"name":      name,
		"dist-tags": map[string]string{tag: version},
		"versions":  map[string]any{version: vm},
		"access":    nil,
		"_attachments": map[string]any{file: map[string]any{
			"content_type": "application/octet-stream",
			"data":         base64.StdEncoding.EncodeToString(tgz),
			"length":       len(tgz),
		}},
	})
	if err != nil {
		return err
	}
	status, took, err := r.put(ctx, r.URL+url.PathEscape(name), body)
	if status == 0 {
		return err
	}
	r.logger.LogAttrs(ctx, slog.LevelInfo, "npmtest: published", slog.String("package", name),
		slog.String("version", version), slog.String("tag", tag), slog.Int("status", status),
		slog.Duration("took", took))
	return err
}

// put sends body as JSON to u with the registry's token, the way npm writes
// to a registry. status is 0 when no answer came; a non-2xx answer is an
// error carrying the first bytes of its body.
func (r *Registry) put(ctx context.Context, u string, body []byte) (status int, took time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+Token)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	took = time.Since(start)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, took, fmt.Errorf("PUT %s: status %d: %s", u, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return resp.StatusCode, took, nil
}

// packDir makes the npm tarball of dir's regular files: package/<name>,
// modes kept.
func packDir(dir string) ([]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Name: "package/" + e.Name(), Mode: int64(info.Mode().Perm()), Size: int64(len(b)),
			ModTime: time.Unix(499162500, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
