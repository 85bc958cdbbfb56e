package eventbus

import (
	"slices"
	"testing"
)

func TestPublishReachesSubscribersInOrder(t *testing.T) {
	var b Bus[int]
	var got []string
	unA := b.Subscribe(func(e int) { got = append(got, "a", string(rune('0'+e))) })
	b.Subscribe(func(e int) { got = append(got, "b", string(rune('0'+e))) })
	b.Publish(1)
	unA()
	b.Publish(2)
	if want := []string{"a", "1", "b", "1", "b", "2"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A handler may unsubscribe itself while being called.
func TestUnsubscribeFromHandler(t *testing.T) {
	var b Bus[int]
	n := 0
	var un func()
	un = b.Subscribe(func(int) { n++; un() })
	b.Publish(1)
	b.Publish(2)
	if n != 1 {
		t.Fatalf("handler called %d times", n)
	}
}
