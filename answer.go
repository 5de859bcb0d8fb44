package t3fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// FirstAnswerWait bounds the first attempt of GetAnswered; each attempt
// after one that timed out is allowed half as long again.
const FirstAnswerWait = 250 * time.Millisecond

// GetAnswered GETs url with header and returns the first response, whatever
// its status. t3's serve accepts connections before it attaches its request
// handler and never answers a request accepted in between (t3code #12215):
// right after a start, a connection can be accepted and stay silent for
// good. So an attempt that gets no response in time is abandoned (which
// closes its connection) and sent again on a new one, each allowed half as
// long again as the last, from FirstAnswerWait, until ctx ends; the error
// then wraps ctx's. Any other failure, such as a refused connection,
// returns at once. The caller closes the body.
func GetAnswered(ctx context.Context, client *http.Client, url string, header http.Header) (*http.Response, error) {
	if client == nil {
		client = http.DefaultClient
	}
	for attempt := FirstAnswerWait; ; attempt += attempt / 2 {
		actx, cancel := context.WithTimeout(ctx, attempt)
		req, err := http.NewRequestWithContext(actx, http.MethodGet, url, nil)
		if err != nil {
			cancel()
			return nil, err
		}
		for k, vs := range header {
			req.Header[k] = vs
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
			return resp, nil
		}
		cancel()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("GET %s: no answer: %w", url, ctx.Err())
		}
		if !timedOut(err) {
			return nil, err
		}
	}
}

func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// cancelOnClose keeps an attempt's context alive while its body is read.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
