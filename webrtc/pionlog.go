package webrtc

import (
	"github.com/pion/logging"
	"github.com/sirupsen/logrus"
)

// pionLogs sends pion's log lines to logrus with a "pion" field naming the
// pion component. pion's Info is chatty per connection and its Debug/Trace
// per packet, so both go to Debug and are usually off; its warnings are
// mostly races of a call's teardown (a packet for a stream just closed),
// so they go to Info.
type pionLogs struct{ log *logrus.Entry }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.WithField("pion", scope)}
}

type pionLogger struct{ log *logrus.Entry }

func (l pionLogger) Trace(msg string)                  {}
func (l pionLogger) Tracef(format string, args ...any) {}
func (l pionLogger) Debug(msg string)                  { l.log.Debug(msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.log.Debugf(format, args...) }
func (l pionLogger) Info(msg string)                   { l.log.Debug(msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.log.Debugf(format, args...) }
func (l pionLogger) Warn(msg string)                   { l.log.Info(msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.log.Infof(format, args...) }
func (l pionLogger) Error(msg string)                  { l.log.Error(msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.log.Errorf(format, args...) }
