package b2bua

import (
	"context"
	"log/slog"

	"github.com/sirupsen/logrus"
)

// logrusHandler sends sipgo's slog records to our logrus logger. sipgo logs
// whole messages on parse errors ("data"); those can hold credentials, so
// that attribute is dropped. sipgo's errors are mostly about one peer's
// messages and go out as warnings.
type logrusHandler struct {
	entry *logrus.Entry
	attrs []slog.Attr
}

func newLogrusHandler(e *logrus.Entry) *logrusHandler { return &logrusHandler{entry: e} }

func (h *logrusHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.entry.Logger.IsLevelEnabled(toLogrusLevel(l))
}

func toLogrusLevel(l slog.Level) logrus.Level {
	switch {
	case l >= slog.LevelWarn:
		return logrus.WarnLevel
	case l >= slog.LevelInfo:
		// sipgo's Info messages are per-message chatter (retransmissions,
		// unmatched responses); they are debug for an operator.
		return logrus.DebugLevel
	default:
		return logrus.TraceLevel
	}
}

func (h *logrusHandler) Handle(_ context.Context, r slog.Record) error {
	fields := logrus.Fields{}
	add := func(a slog.Attr) bool {
		if a.Key != "data" {
			fields[a.Key] = a.Value.String()
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.entry.WithFields(fields).Log(toLogrusLevel(r.Level), r.Message)
	return nil
}

func (h *logrusHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logrusHandler{entry: h.entry, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *logrusHandler) WithGroup(string) slog.Handler { return h }
