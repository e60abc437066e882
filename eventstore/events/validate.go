package events

import (
	"encoding/binary"
	"errors"
)

// errShape is returned when msgpack bytes are malformed or claim more
// elements than they hold.
var errShape = errors.New("malformed msgpack")

// maxDepth bounds nesting of msgpack values.
const maxDepth = 256

// checkShape walks one msgpack value and its contents without decoding
// them, checking that every length fits in the bytes that remain (each
// element takes at least one byte) and that nothing follows the value.
// Decoders allocate by declared lengths, so this keeps a short corrupt
// message from making them allocate without bound.
func checkShape(b []byte) error {
	pending := []int{1} // items still expected at each open level
	i := 0
	for len(pending) > 0 {
		top := len(pending) - 1
		if pending[top] == 0 {
			pending = pending[:top]
			continue
		}
		pending[top]--
		next, n, items, err := header(b, i)
		if err != nil {
			return err
		}
		i = next
		if n > len(b)-i {
			return errShape
		}
		i += n
		if items > 0 {
			if items > len(b)-i || len(pending) >= maxDepth {
				return errShape
			}
			pending = append(pending, items)
		}
	}
	if i != len(b) {
		return errShape
	}
	return nil
}

// header reads the header of the value at b[i:]. It returns where the
// header ends, the bytes of payload that follow it and the number of
// nested items the value holds.
func header(b []byte, i int) (next, n, items int, err error) {
	if i >= len(b) {
		return 0, 0, 0, errShape
	}
	c := b[i]
	i++
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
	case c >= 0x80 && c <= 0x8f:
		items = 2 * int(c&0x0f)
	case c >= 0x90 && c <= 0x9f:
		items = int(c & 0x0f)
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
	default:
		size, fixed, ok := wideSizes(c)
		if !ok {
			return 0, 0, 0, errShape
		}
		n = fixed
		if size > 0 {
			if len(b)-i < size {
				return 0, 0, 0, errShape
			}
			l := lengthField(b[i:], size)
			i += size
			if l > uint64(len(b)) {
				return 0, 0, 0, errShape
			}
			switch c {
			case 0xdc, 0xdd:
				items = int(l)
			case 0xde, 0xdf:
				items = 2 * int(l)
			case 0xc7, 0xc8, 0xc9:
				n = int(l) + 1 // ext type byte
			default:
				n = int(l)
			}
		}
	}
	return i, n, items, nil
}

// wideSizes returns, for a type byte outside the fixed ranges, the size of
// its length field or, when it has none, the size of its payload. ok is
// false for the unused byte 0xc1.
func wideSizes(c byte) (size, n int, ok bool) {
	switch c {
	case 0xc4, 0xd9, 0xc7:
		size = 1
	case 0xc5, 0xda, 0xc8, 0xdc, 0xde:
		size = 2
	case 0xc6, 0xdb, 0xc9, 0xdd, 0xdf:
		size = 4
	case 0xcc, 0xd0:
		n = 1
	case 0xcd, 0xd1:
		n = 2
	case 0xca, 0xce, 0xd2:
		n = 4
	case 0xcb, 0xcf, 0xd3:
		n = 8
	case 0xd4:
		n = 2
	case 0xd5:
		n = 3
	case 0xd6:
		n = 5
	case 0xd7:
		n = 9
	case 0xd8:
		n = 17
	default: // 0xc1 is never used
		return 0, 0, false
	}
	return size, n, true
}

// lengthField decodes a big-endian length field of 1, 2 or 4 bytes.
func lengthField(b []byte, size int) uint64 {
	switch size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	default:
		return uint64(binary.BigEndian.Uint32(b))
	}
}
