package app

import (
	"io"

	"github.com/sirupsen/logrus"

	"callpath/conf"
)

// NewLogger builds the process logger from the log section of the config.
func NewLogger(c conf.Log, out io.Writer) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(out)
	if level, err := logrus.ParseLevel(c.Level); err == nil {
		log.SetLevel(level)
	}
	if c.Format == "json" {
		log.SetFormatter(&logrus.JSONFormatter{})
	} else {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	}
	return log
}
