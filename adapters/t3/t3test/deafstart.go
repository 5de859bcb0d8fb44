package t3test

import (
	"context"
	"net"
	"time"
)

// deafConnKey marks the context of a connection accepted before the
// handler attached: while a start migrates, and for Faults.DeafStart after.
type deafConnKey struct{}

// listenDeaf binds addr and serves it at once, every connection accepted
// until attach deaf for good.
func (s *Server) listenDeaf(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.httpSrv = s.newHTTPServer()
	go s.runHTTP(ln)
	return ln, nil
}

// attachAfter attaches the handler d after the setup, unless the server
// closes first.
func (s *Server) attachAfter(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.closing:
		return
	}
	s.attach()
}

// attach attaches the request handler, unless the server is closing.
func (s *Server) attach() {
	// Under lifeMu, as Close marks closing: nothing is logged to a log
	// file Close has released.
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	select {
	case <-s.closing:
		return
	default:
	}
	s.attached.Store(true)
	s.log.Info("Listening on " + s.URL)
	close(s.ready)
}

func (s *Server) connContext(ctx context.Context, _ net.Conn) context.Context {
	if !s.attached.Load() {
		return context.WithValue(ctx, deafConnKey{}, true)
	}
	return ctx
}

// deafConn says whether the request came on a connection accepted before
// the attach: t3 never answers such a request.
func deafConn(ctx context.Context) bool { return ctx.Value(deafConnKey{}) != nil }

// abort undoes a failed Start, closing the port too if it was bound.
func (s *Server) abort() {
	if s.httpSrv != nil {
		s.lifeMu.Lock()
		close(s.closing)
		s.lifeMu.Unlock()
		_ = s.httpSrv.Close()
		<-s.served
		s.handlers.Wait()
	}
	s.release()
}
