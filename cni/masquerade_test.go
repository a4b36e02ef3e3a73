package cni

import (
	"reflect"
	"testing"
)

func TestMasqueradeRules(t *testing.T) {
	listing := `-P POSTROUTING ACCEPT
-A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"podsup\" id: \"abc_pause.0\"" -j CNI-0123abcd
-A POSTROUTING -s 10.88.0.9/32 -m comment --comment "name: \"podsup\" id: \"abc_pause.0\"" -j CNI-0123abcd
-A POSTROUTING -s 10.88.0.6/32 -m comment --comment "name: \"podsup\" id: \"abc_pause.01\"" -j CNI-99999999
-A POSTROUTING -s 10.88.0.7/32 -m comment --comment "name: \"other\" id: \"abc_pause.0\"" -j CNI-77777777
-A POSTROUTING -s 10.88.0.8/32 -m comment --comment "name: \"podsup\" id: \"abc_pause.0\"" -j MASQUERADE
`
	got := masqueradeRules(listing, `name: "podsup" id: "abc_pause.0"`)
	want := []masqueradeRule{{"10.88.0.5/32", "CNI-0123abcd"}, {"10.88.0.9/32", "CNI-0123abcd"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v: only that network's rules of that sandbox, jumping to a CNI chain", got, want)
	}
}
