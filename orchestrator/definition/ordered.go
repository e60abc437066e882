package definition

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// orderedAdapter converts the values of a scope for CEL as the default
// adapter does, except that maps iterate in key order: an expression that
// ranges over a map (m.map(k, ...), m.all(...), m.exists(...)) then
// evaluates the same on every run, so a replay decides the same.
type orderedAdapter struct{}

// NativeToValue converts v, with maps (at any depth) ordered.
func (orderedAdapter) NativeToValue(v any) ref.Val {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]ref.Val, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			keys = append(keys, types.String(k))
		}
		return orderedKeys{Mapper: types.NewStringInterfaceMap(orderedAdapter{}, x), keys: keys}
	case []any:
		return types.NewDynamicList(orderedAdapter{}, x)
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

// orderedLiteral returns the map m (a map literal's, whose keys are
// strings, ints, uints or bools) with an iterator that yields its keys in
// order: bools, then ints, then uints, then strings, each ascending.
func orderedLiteral(m traits.Mapper) ref.Val {
	var keys []ref.Val
	for it := m.Iterator(); it.HasNext() == types.True; {
		keys = append(keys, it.Next())
	}
	slices.SortFunc(keys, compareKeys)
	return orderedKeys{Mapper: m, keys: keys}
}

// orderedKeys is a map whose iterator yields keys in a fixed order.
type orderedKeys struct {
	traits.Mapper
	keys []ref.Val
}

// Iterator yields the map's keys in order.
func (m orderedKeys) Iterator() traits.Iterator {
	return types.NewRefValList(types.DefaultTypeAdapter, m.keys).(traits.Lister).Iterator()
}

// compareKeys orders map keys: by type, then by value.
func compareKeys(a, b ref.Val) int {
	if c := cmp.Compare(keyRank(a), keyRank(b)); c != 0 {
		return c
	}
	switch x := a.(type) {
	case types.Bool:
		y := b.(types.Bool)
		return cmp.Compare(boolRank(bool(x)), boolRank(bool(y)))
	case types.Int:
		return cmp.Compare(x, b.(types.Int))
	case types.Uint:
		return cmp.Compare(x, b.(types.Uint))
	case types.String:
		return strings.Compare(string(x), string(b.(types.String)))
	}
	return 0
}

func keyRank(v ref.Val) int {
	switch v.(type) {
	case types.Bool:
		return 0
	case types.Int:
		return 1
	case types.Uint:
		return 2
	case types.String:
		return 3
	}
	return 4
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
