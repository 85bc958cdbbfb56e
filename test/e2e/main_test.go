package e2e

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"callpath/b2bua"
)

// Test timers: T1 of 100 ms keeps timeouts (Timer B = 6.4 s) short; every
// test shares them because sipgo keeps them process-wide.
const testT1, testT2, testT4 = 100 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond

func TestMain(m *testing.M) {
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	b2bua.InitSIPStack(testT1, testT2, testT4, 64*testT1, logrus.NewEntry(quiet))
	os.Exit(m.Run())
}
