package calls

import (
	"errors"
	"testing"
)

func TestProvisionalStatus(t *testing.T) {
	for _, tc := range []struct {
		code int
		want Status
		ok   bool
	}{
		{100, "", false}, {180, Ringing, true}, {181, Proceeding, true}, {182, Waiting, true},
		{183, InProgress, true}, {199, Proceeding, true}, {200, "", false}, {486, "", false},
	} {
		if got, ok := ProvisionalStatus(tc.code); got != tc.want || ok != tc.ok {
			t.Errorf("%d: %q %v, want %q %v", tc.code, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFailureStatus(t *testing.T) {
	for _, tc := range []struct {
		code    int
		alerted bool
		want    Status
	}{
		{486, false, Busy}, {600, true, Busy}, {603, true, Declined}, {487, true, SessionCancelled},
		{480, true, NoAnswer}, {408, true, NoAnswer}, {480, false, NotReachable}, {408, false, NotReachable},
		{404, false, NotReachable}, {503, false, NotReachable}, {503, true, Failed}, {404, true, Failed},
		{488, false, Failed}, {500, true, Failed}, {403, false, Failed},
	} {
		if got := FailureStatus(tc.code, tc.alerted); got != tc.want {
			t.Errorf("%d alerted=%v: %s, want %s", tc.code, tc.alerted, got, tc.want)
		}
		if !FailureStatus(tc.code, tc.alerted).Terminal() {
			t.Errorf("%d: not terminal", tc.code)
		}
	}
}

func TestDecide(t *testing.T) {
	const sdp = "v=0"
	for _, tc := range []struct {
		name       string
		current    Status
		role       Role
		haveAnswer bool
		change     Change
		want       Action
		err        error
	}{
		{"early media", Initial, Receiver, false, Change{InProgress, sdp}, SendProgress, nil},
		{"early media without answer", Initial, Receiver, false, Change{InProgress, ""}, 0, ErrAnswerRequired},
		{"ringing", Initial, Receiver, false, Change{Ringing, ""}, SendRinging, nil},
		{"ringing after early media", InProgress, Receiver, true, Change{Ringing, ""}, SendRinging, nil},
		{"ringing twice", Ringing, Receiver, true, Change{Ringing, ""}, 0, ErrStatusNotAllowed},
		{"answer", Ringing, Receiver, false, Change{Connected, sdp}, SendAnswer, nil},
		{"answer with the early answer", Ringing, Receiver, true, Change{Connected, ""}, SendAnswer, nil},
		{"answer without any SDP", Initial, Receiver, false, Change{Connected, ""}, 0, ErrAnswerRequired},
		{"caller cannot answer", Ringing, Originator, false, Change{Connected, sdp}, 0, ErrStatusNotAllowed},
		{"hold before answer", Ringing, Receiver, true, Change{Hold, ""}, 0, ErrStatusNotAllowed},
		{"hold", Connected, Originator, true, Change{Hold, ""}, SendHold, nil},
		{"hold after resume", Resume, Receiver, true, Change{Hold, ""}, SendHold, nil},
		{"resume", Hold, Receiver, true, Change{Resume, ""}, SendResume, nil},
		{"resume unheld", Connected, Receiver, true, Change{Resume, ""}, 0, ErrStatusNotAllowed},
		{"terminated by PUT", Connected, Receiver, true, Change{Terminated, ""}, 0, ErrStatusNotAllowed},
		{"after the end", Terminated, Receiver, true, Change{Hold, ""}, 0, ErrSessionEnded},
		{"busy by PUT", Initial, Receiver, false, Change{Busy, ""}, 0, ErrStatusNotAllowed},
	} {
		got, err := Decide(tc.current, tc.role, tc.haveAnswer, tc.change)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestAddresses(t *testing.T) {
	for _, tc := range []struct {
		in, number string
		valid, ok  bool
	}{
		{"tel:+4790000001", "+4790000001", true, true},
		{"sip:+4790000001@ims.example.net", "+4790000001", true, true},
		{"sip:alice@example.com", "", true, false},
		{"tel:4790000001", "", false, false},
		{"tel:+123", "", false, false},
		{"sip:+47@x", "", false, false},
		{"mailto:a@b.com", "", false, false},
		{"", "", false, false},
	} {
		a, err := ParseAddress(tc.in)
		if (err == nil) != tc.valid {
			t.Errorf("%q: valid=%v, want %v", tc.in, err == nil, tc.valid)
			continue
		}
		if err != nil {
			continue
		}
		if n, ok := a.Number(); n != tc.number || ok != tc.ok {
			t.Errorf("%q: number %q %v, want %q %v", tc.in, n, ok, tc.number, tc.ok)
		}
	}
	if NumberAddress("+4790000001") != "tel:+4790000001" {
		t.Error("NumberAddress")
	}
}

func TestStatusClasses(t *testing.T) {
	for _, s := range allStatuses {
		n := 0
		for _, in := range []bool{s.Terminal(), s.Established(), s.Early()} {
			if in {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s is in %d of terminal/established/early, want exactly one", s, n)
		}
		if got, ok := ParseStatus(string(s)); !ok || got != s {
			t.Errorf("ParseStatus(%q) = %q %v", s, got, ok)
		}
	}
	if _, ok := ParseStatus("connected"); ok {
		t.Error("status names are case-sensitive")
	}
}

func FuzzAddress(f *testing.F) {
	for _, s := range []string{"tel:+4790000001", "sip:+4790000001@ims.example.net", "sip:a@b.cd", "sip:+@x.io"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if n, ok := a.Number(); ok && (len(n) < 2 || n[0] != '+') {
			t.Fatalf("%q: number %q", s, n)
		}
	})
}
