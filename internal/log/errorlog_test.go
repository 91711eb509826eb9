package log_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/log"
)

const testIdentity = kes.Identity("9fa7ccfe82a8b0e60cd865600c86fbeca8fc01159a2ed1818d7522471c3a98bf")

// fixedClock is a handler that stamps every record with a fixed time, the
// injected clock of these tests. Everything else goes to the wrapped handler,
// so level filtering is the real one.
type fixedClock struct {
	slog.Handler
	now time.Time
}

func (h fixedClock) Handle(ctx context.Context, r slog.Record) error {
	r.Time = h.now
	return h.Handler.Handle(ctx, r)
}

func (h fixedClock) WithAttrs(attrs []slog.Attr) slog.Handler {
	return fixedClock{h.Handler.WithAttrs(attrs), h.now}
}

func (h fixedClock) WithGroup(name string) slog.Handler {
	return fixedClock{h.Handler.WithGroup(name), h.now}
}

// loggerAt returns the logger of l with every record stamped with now.
func loggerAt(l *log.ErrorLog, now time.Time) *slog.Logger {
	return slog.New(fixedClock{l.Logger().Handler(), now})
}

var testTime = time.Date(2026, 11, 27, 15, 52, 38, 955123456, time.UTC)

func TestErrorLogFormat(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
		log  func(*slog.Logger)
		want string
	}{{
		name: "http server message",
		now:  testTime,
		log: func(l *slog.Logger) {
			l.Info("http: TLS handshake error from 127.0.0.1:36900: tls: client didn't provide a certificate")
		},
		want: `time=2026-11-27T15:52:38.955Z level=INFO msg="http: TLS handshake error from 127.0.0.1:36900: tls: client didn't provide a certificate"` + "\n",
	}, {
		name: "handler error with request",
		now:  testTime,
		log: func(l *slog.Logger) {
			l.Error("vault: connection refused",
				log.Request("PUT", "/v1/key/create/k", netip.MustParseAddr("10.0.0.5"), testIdentity))
		},
		want: `time=2026-11-27T15:52:38.955Z level=ERROR msg="vault: connection refused" req.method=PUT req.path=/v1/key/create/k req.ip=10.0.0.5 req.identity=` + string(testIdentity) + "\n",
	}, {
		name: "unknown peer and identity",
		now:  testTime,
		log: func(l *slog.Logger) {
			l.Debug("access denied: identity not found", log.Request("GET", "/v1/key/describe/k", netip.Addr{}, ""))
		},
		want: `time=2026-11-27T15:52:38.955Z level=DEBUG msg="access denied: identity not found" req.method=GET req.path=/v1/key/describe/k req.ip=<unknown> req.identity=<unknown>` + "\n",
	}, {
		name: "IPv4-mapped address and zone offset",
		now:  testTime.In(time.FixedZone("CET", 3600)),
		log: func(l *slog.Logger) {
			l.Warn("key store is not reachable", log.Request("GET", "/v1/ready", netip.MustParseAddr("::ffff:127.0.0.1"), testIdentity))
		},
		want: `time=2026-11-27T16:52:38.955+01:00 level=WARN msg="key store is not reachable" req.method=GET req.path=/v1/ready req.ip=127.0.0.1 req.identity=` + string(testIdentity) + "\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := log.NewErrorLog(&buf, slog.LevelDebug, nil)
			sub := subscribe(t, l)
			defer sub.Close()

			tt.log(loggerAt(l, tt.now))

			if got := buf.String(); got != tt.want {
				t.Errorf("console:\n got %q\nwant %q", got, tt.want)
			}
			event := <-sub.Events()
			var msg struct{ Message string }
			if err := json.Unmarshal(event, &msg); err != nil {
				t.Fatalf("event %q: %v", event, err)
			}
			if want := strings.TrimSuffix(tt.want, "\n"); msg.Message != want {
				t.Errorf("event message:\n got %q\nwant %q", msg.Message, want)
			}
			if !bytes.HasSuffix(event, []byte("}\n")) || bytes.Count(event, []byte("\n")) != 1 {
				t.Errorf("event %q is not one JSON line", event)
			}
		})
	}
}

func TestErrorLogEventBytes(t *testing.T) {
	l := log.NewErrorLog(new(bytes.Buffer), nil, nil)
	sub := subscribe(t, l)
	defer sub.Close()

	loggerAt(l, testTime).Error("keystore: \"k\" failed")

	const want = `{"message":"time=2026-11-27T15:52:38.955Z level=ERROR msg=\"keystore: \\\"k\\\" failed\""}` + "\n"
	if got := string(<-sub.Events()); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// levelCases are the config values of config.md §8 and which of the
// records DEBUG, INFO, WARN, ERROR pass them.
var levelCases = []struct {
	config string
	passes [4]bool
}{
	{"DEBUG", [4]bool{true, true, true, true}},
	{"on", [4]bool{false, true, true, true}},
	{"", [4]bool{false, true, true, true}},
	{"WARN", [4]bool{false, false, true, true}},
	{"ERROR", [4]bool{false, false, false, true}},
	{"ERROR+1", [4]bool{false, false, false, false}},
	{"off", [4]bool{false, false, false, false}},
}

var recordLevels = [4]slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}

func TestErrorLogLevel(t *testing.T) {
	for _, tt := range levelCases {
		t.Run(tt.config, func(t *testing.T) {
			level, err := log.ParseLevel(tt.config)
			if err != nil {
				t.Fatal(err)
			}
			for i, rl := range recordLevels {
				var buf bytes.Buffer
				var counted int
				l := log.NewErrorLog(&buf, level, func() { counted++ })
				sub := subscribe(t, l)

				l.Logger().Log(t.Context(), rl, "message")
				sub.Close()

				n := 0
				if tt.passes[i] {
					n = 1
				}
				if got := strings.Count(buf.String(), "\n"); got != n {
					t.Errorf("%v record: %d console lines, want %d", rl, got, n)
				}
				if got := len(sub.Events()); got != n {
					t.Errorf("%v record: %d stream events, want %d", rl, got, n)
				}
				if counted != n {
					t.Errorf("%v record: onEvent called %d times, want %d", rl, counted, n)
				}
			}
		})
	}
}

func TestErrorLogLevelVar(t *testing.T) {
	var buf bytes.Buffer
	var level slog.LevelVar
	l := log.NewErrorLog(&buf, &level, nil)

	l.Logger().Info("one")
	level.Set(log.LevelOff)
	l.Logger().Error("two")
	level.Set(slog.LevelWarn)
	l.Logger().Info("three")
	l.Logger().Warn("four")

	var msgs []string
	for line := range strings.Lines(buf.String()) {
		_, msg, _ := strings.Cut(line, "msg=")
		msgs = append(msgs, strings.TrimSpace(msg))
	}
	if want := []string{"one", "four"}; strings.Join(msgs, ",") != strings.Join(want, ",") {
		t.Errorf("logged %q, want %q", msgs, want)
	}
}

func TestErrorLogWith(t *testing.T) {
	var buf bytes.Buffer
	l := log.NewErrorLog(&buf, nil, nil)
	sub := subscribe(t, l)
	defer sub.Close()

	loggerAt(l, testTime).With("component", "vault").WithGroup("g").Error("failed", "n", 1)

	const want = `time=2026-11-27T15:52:38.955Z level=ERROR msg=failed component=vault g.n=1` + "\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
	if len(sub.Events()) != 1 {
		t.Errorf("derived logger streamed %d events, want 1", len(sub.Events()))
	}
}

func TestErrorLogServerLog(t *testing.T) {
	var buf bytes.Buffer
	var level slog.LevelVar
	l := log.NewErrorLog(&buf, &level, nil)

	l.ServerLog().Printf("http: TLS handshake error from %s: %s", "127.0.0.1:36900", "tls: client didn't provide a certificate")
	level.Set(slog.LevelWarn)
	l.ServerLog().Print("http: suppressed")

	_, rest, ok := strings.Cut(buf.String(), " ") // drop the time of the real clock
	const want = `level=INFO msg="http: TLS handshake error from 127.0.0.1:36900: tls: client didn't provide a certificate"` + "\n"
	if !ok || rest != want {
		t.Errorf("got %q, want time=… %q", buf.String(), want)
	}
}
