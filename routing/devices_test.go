package routing

import "testing"

type deviceSet map[string]bool

func (s deviceSet) HasDevice(n string) bool { return s[n] }

func TestDevicesFirst(t *testing.T) {
	next := NewStaticTable([]Route{{Prefix: "+47", Target: "sip:trunk.example.net"}}, "")
	d := DevicesFirst{Devices: deviceSet{"+4790000001": true}, Gateway: "sip:webrtc@127.0.0.1:5070", Next: next}
	for _, tc := range []struct {
		to, want string
		action   Action
	}{
		{"+4790000001", "sip:webrtc@127.0.0.1:5070", ActionForward},
		{"+4790000002", "sip:trunk.example.net", ActionForward},
		{"+4690000002", "", ActionReject},
	} {
		got := d.Decide(Call{From: "+4790000009", To: tc.to})
		if got.Action != tc.action || tc.action == ActionForward && got.Targets[0].URI != tc.want {
			t.Errorf("%s: %+v, want %v %s", tc.to, got, tc.action, tc.want)
		}
	}
}
