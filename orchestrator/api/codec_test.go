package api

import (
	"strings"
	"testing"
)

// checkNumbers names where a number the API's JSON would round is, and
// leaves every other text to protojson.
func TestCheckNumbersNamesWhereANumberWouldRound(t *testing.T) {
	for body, want := range map[string]string{
		`{"a": [{"b": [0, 9007199254740993]}], "c": 1}`:     "a[0].b[1]: whole number 9007199254740993",
		`[1, 2, -12345678901234567891]`:                     "[2]: whole number -12345678901234567891",
		`{"a": {}, "b": [[], {"c": 9.007199254740993e15}]}`: "b[1].c: whole number 9.007199254740993e15",
		`9007199254740993`:                                  "the request: whole number 9007199254740993",
		`{"a": "9007199254740993", "b": 9007199254740992, "c": 0.1000000000000000055511151231257827}`: "",
		`{"a" 9007199254740993}`: "", // not JSON: protojson says so
	} {
		err := checkNumbers([]byte(body))
		if got := ""; err != nil {
			got = err.Error()
			if want == "" || !strings.HasPrefix(got, want) {
				t.Errorf("%s: %v; want %q", body, err, want)
			}
		} else if want != "" {
			t.Errorf("%s: taken; want %q", body, want)
		}
	}
}
