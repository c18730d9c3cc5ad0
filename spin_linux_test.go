package tokenpipe

import "testing"

// parseIdle takes idle+iowait from /proc/stat's "cpu" line, and refuses
// anything else, a line cut short included.
func TestParseIdle(t *testing.T) {
	for in, want := range map[string]int64{
		"cpu  254225 50786 227835 450183 38169 0 746 17620 0 0\ncpu0 1 2 3 4 5\n": 450183 + 38169,
		"cpu  1 2 3 4 5\n":                    4 + 5,
		"cpu0 1 2 3 4 5\n":                    -1,
		"cpu  1 2 3 4\n":                      -1,
		"cpu  1 2 3 x 5\n":                    -1,
		"cpu  1 2 3 4 5":                      -1, // cut short: the last field may be too
		"":                                    -1,
		"intr 1 2 3 4 5 6 ":                   -1,
		"cpu  1 2 3 99999999999999999999 5\n": -1,
	} {
		got, ok := parseIdle([]byte(in))
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("parseIdle(%q) = %d, want %d", in, got, want)
		}
	}
}
