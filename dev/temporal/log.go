package devtemporal

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// stderr is where the default logger writes.
var stderr io.Writer = os.Stderr

// levelHandler drops records below a (changeable) minimum level before they
// reach the wrapped handler.
type levelHandler struct {
	min   *slog.LevelVar
	inner slog.Handler
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min.Level() && h.inner.Enabled(ctx, l)
}

func (h levelHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.inner.Handle(ctx, r)
}

func (h levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelHandler{min: h.min, inner: h.inner.WithAttrs(attrs)}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{min: h.min, inner: h.inner.WithGroup(name)}
}

// newQuietLogger returns l restricted to records at or above min.
func newQuietLogger(l *slog.Logger, min *slog.LevelVar) *slog.Logger {
	return slog.New(levelHandler{min: min, inner: l.Handler()})
}

// fatalError is what serverLogger.Fatal panics with. The server calls Fatal
// where the stock zap logger would os.Exit (for example when a listener
// cannot bind); Start recovers it and returns it as an error.
type fatalError struct{ msg string }

func (e fatalError) Error() string { return "temporal server fatal: " + e.msg }

// serverLogger adapts *slog.Logger to the server's log.Logger. Tags become
// slog attributes; they are only rendered when the level is enabled.
type serverLogger struct {
	l *slog.Logger
}

var (
	_ log.Logger      = serverLogger{}
	_ log.WithLogger  = serverLogger{}
	_ log.SLogWrapper = serverLogger{}
)

func (s serverLogger) Debug(msg string, tags ...tag.Tag) { s.log(slog.LevelDebug, msg, tags) }
func (s serverLogger) Info(msg string, tags ...tag.Tag)  { s.log(slog.LevelInfo, msg, tags) }
func (s serverLogger) Warn(msg string, tags ...tag.Tag)  { s.log(slog.LevelWarn, msg, tags) }
func (s serverLogger) Error(msg string, tags ...tag.Tag) { s.log(slog.LevelError, msg, tags) }

// DPanic only panics in the server's development mode; here it is an error.
func (s serverLogger) DPanic(msg string, tags ...tag.Tag) { s.log(slog.LevelError, msg, tags) }

// Panic logs and panics, as the server expects.
func (s serverLogger) Panic(msg string, tags ...tag.Tag) {
	s.log(slog.LevelError, msg, tags)
	panic(fmt.Sprintf("temporal server panic: %s", msg))
}

// Fatal logs and panics with a fatalError instead of exiting the process.
func (s serverLogger) Fatal(msg string, tags ...tag.Tag) {
	s.log(slog.LevelError, msg, tags)
	panic(fatalError{msg: msg + attrsText(tags)})
}

// With returns a logger that adds tags to every record.
func (s serverLogger) With(tags ...tag.Tag) log.Logger {
	args := make([]any, 0, len(tags))
	for _, t := range tags {
		args = append(args, slog.Any(t.Key(), t.Value()))
	}
	return serverLogger{l: s.l.With(args...)}
}

// SLog lets the server's own slog bridge reuse the underlying logger.
func (s serverLogger) SLog() *slog.Logger { return s.l }

func (s serverLogger) log(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, len(tags))
	for i, t := range tags {
		attrs[i] = slog.Any(t.Key(), t.Value())
	}
	s.l.LogAttrs(ctx, level, msg, attrs...)
}

// attrsText renders tags as " key=value…" for error messages.
func attrsText(tags []tag.Tag) string {
	var out string
	for _, t := range tags {
		out += fmt.Sprintf(" %s=%v", t.Key(), t.Value())
	}
	return out
}
