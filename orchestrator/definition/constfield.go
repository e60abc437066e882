package definition

// ConstField returns the value of field key of a map template when that
// field holds no expression, so every evaluation yields it. It reports
// false for a computed field, a missing one and a template that is not a
// map written out (such as a single expression).
func (t *Template) ConstField(key string) (any, bool) {
	if t == nil {
		return nil, false
	}
	m, ok := t.root.(*mapNode)
	if !ok {
		return nil, false
	}
	for i, k := range m.keys {
		if k == key {
			lit, ok := m.vals[i].(litNode)
			return lit.v, ok
		}
	}
	return nil, false
}
