package bench

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"
)

func jsonValue(s string) (*structpb.Value, error) {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("bench: input is not JSON: %w", err)
	}
	return structpb.NewValue(v)
}
