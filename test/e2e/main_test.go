package e2e

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"

	"callpath/b2bua"
)

// Test timers: T1 of 100 ms keeps timeouts (Timer B = 6.4 s) short. The
// gateway takes them from its config; the sipgo phones of the tests share
// them process-wide.
const testT1, testT2, testT4 = 100 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond

func TestMain(m *testing.M) {
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	b2bua.InitSIPStack(testT1, testT2, testT4, logrus.NewEntry(quiet))
	// The sipgo phones refuse UDP messages over 1300 bytes by default; the
	// gateway sends WebRTC-sized SDP over UDP as fragments, and so must the
	// test phones that talk to it.
	sip.UDPMTUSize = 65507 + 200
	code := m.Run()
	removeBinary()
	os.Exit(code)
}
