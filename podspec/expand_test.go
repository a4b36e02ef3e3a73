package podspec

import "testing"

func TestExpand(t *testing.T) {
	lookup := envLookup([]string{"HOST=db", "PORT=5432", "EMPTY=", "PORT=6543"})
	cases := map[string]string{
		"plain":                 "plain",
		"$(HOST):$(PORT)":       "db:6543",
		"$$(HOST)":              "$(HOST)",
		"$(MISSING) stays":      "$(MISSING) stays",
		"$(EMPTY)x":             "x",
		"cost $5":               "cost $5",
		"trailing $":            "trailing $",
		"$(unterminated":        "$(unterminated",
		"$()":                   "$()",
		"a$$b":                  "a$b",
		"--url=http://$(HOST)/": "--url=http://db/",
	}
	for in, want := range cases {
		if got := Expand(in, lookup); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}
