package definition

import "testing"

func TestConstField(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want any
		ok   bool
	}{
		{`{subject: orders.new, data: "${ input }"}`, "orders.new", true},
		{`{subject: "$${ not an expression }"}`, "${ not an expression }", true},
		{`{subject: "${ 'orders.' + input.kind }"}`, nil, false},
		{`{subject: "orders.${ input.kind }"}`, nil, false},
		{`{data: x}`, nil, false},
		{`"${ {'subject': 'a'} }"`, nil, false},
		{`[a]`, nil, false},
	} {
		got, ok := compileTemplate(t, tc.src, 0).ConstField("subject")
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: ConstField = %v, %v; want %v, %v", tc.src, got, ok, tc.want, tc.ok)
		}
	}
	if v, ok := (*Template)(nil).ConstField("subject"); v != nil || ok {
		t.Errorf("nil template: %v, %v", v, ok)
	}
}
