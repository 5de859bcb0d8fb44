package t3fleet

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// FirstAnswerWait is how long GetAnswered waits for an answer before it
// sends the request again on a new connection; each later wait is half as
// long again.
const FirstAnswerWait = 250 * time.Millisecond

// MaxAnswerAttempts bounds how many copies of one request GetAnswered has
// in flight: with waits growing by half, 16 copies span more than ten
// minutes, so in practice the caller's deadline ends it first (8 copies
// in 10 s).
const MaxAnswerAttempts = 16

// GetAnswered GETs url with header and returns the first response, whatever
// its status. t3's serve accepts connections before it attaches its request
// handler and never answers a request accepted in between (t3code #12215):
// right after a start, a connection can be accepted and stay silent for
// good. So while no answer has come, the request is sent again on a new
// connection after FirstAnswerWait, then after waits half as long again
// each (up to MaxAnswerAttempts copies), however long the window lasts.
// None is abandoned, so a live but
// slow instance still answers the first; the first answer wins and the
// other copies are cancelled (which closes their connections). Everything,
// reading the body included, is bounded by ctx alone; when it ends first,
// the error wraps ctx's. Any other failure, such as a refused connection,
// returns at once. The caller closes the body.
func GetAnswered(ctx context.Context, client *http.Client, url string, header http.Header) (*http.Response, error) {
	if client == nil {
		client = http.DefaultClient
	}
	type result struct {
		i    int
		resp *http.Response
		err  error
	}
	results := make(chan result)
	done := make(chan struct{})
	defer close(done)
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			if c != nil {
				c() // the copies that lost; the winner's goes with its body
			}
		}
	}()
	send := func() error {
		actx, cancel := context.WithCancel(ctx)
		req, err := http.NewRequestWithContext(actx, http.MethodGet, url, nil)
		if err != nil {
			cancel()
			return err
		}
		for k, vs := range header {
			req.Header[k] = vs
		}
		i := len(cancels)
		cancels = append(cancels, cancel)
		go func() {
			resp, err := client.Do(req)
			select {
			case results <- result{i, resp, err}:
			case <-done: // another copy won, or the caller gave up
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
		return nil
	}
	if err := send(); err != nil {
		return nil, err
	}
	wait := FirstAnswerWait
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case r := <-results:
			if r.err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("GET %s: no answer: %w", url, ctx.Err())
				}
				return nil, r.err
			}
			r.resp.Body = &cancelOnClose{ReadCloser: r.resp.Body, cancel: cancels[r.i]}
			cancels[r.i] = nil
			return r.resp, nil
		case <-timer.C:
			if len(cancels) < MaxAnswerAttempts {
				if err := send(); err != nil {
					return nil, err
				}
				wait += wait / 2
				timer.Reset(wait)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("GET %s: no answer: %w", url, ctx.Err())
		}
	}
}

// cancelOnClose keeps the winning copy's context alive while its body is
// read, and releases it on Close.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
