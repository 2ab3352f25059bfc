//! Modbus: the data model (register tables, data types, byte orders) and the TCP poller.

mod rtu;
pub mod tcp;
pub mod unit;

pub use rtu::RtuBus;
pub use tcp::ModbusTcpPoller;

use crate::config::{ByteOrder, DataType, PointConfig, RegisterAddress};

/// Reorders the wire bytes of `words` (each register high byte first, Modbus Application
/// Protocol v1.1b3 §4.2) into big-endian A..H according to `order`.
fn ordered_bytes(words: &[u16], order: ByteOrder, be: &mut [u8]) {
    let n = words.len();
    let mut wire = [0u8; 8];
    for (i, w) in words.iter().enumerate() {
        let [hi, lo] = w.to_be_bytes();
        wire[2 * i] = hi;
        wire[2 * i + 1] = lo;
    }
    for (i, b) in be.iter_mut().enumerate().take(2 * n) {
        // Position in `wire` of the i-th most significant byte.
        let src = match order {
            ByteOrder::Abcd => i,
            ByteOrder::Dcba => 2 * n - 1 - i,
            // Bytes swapped within each word, words in order.
            ByteOrder::Badc => i ^ 1,
            // Words in reverse order, bytes within each word in order.
            ByteOrder::Cdab => (n - 1 - i / 2) * 2 + (i % 2),
        };
        *b = wire[src];
    }
}

/// Decodes the raw registers of a numeric point (before scale and offset). `bit` selects the
/// bit for [`DataType::Bit`].
pub fn decode_registers(words: &[u16], ty: DataType, order: ByteOrder) -> Option<f64> {
    decode_number(words, ty, order, 0)
}

fn decode_number(words: &[u16], ty: DataType, order: ByteOrder, bit: u8) -> Option<f64> {
    let n = usize::from(ty.registers());
    let words = words.get(..n)?;
    let mut be = [0u8; 8];
    ordered_bytes(words, order, &mut be);
    let b2 = [be[0], be[1]];
    let b4 = [be[0], be[1], be[2], be[3]];
    Some(match ty {
        DataType::Bool => f64::from(u8::from(words[0] != 0)),
        DataType::U16 => f64::from(u16::from_be_bytes(b2)),
        DataType::I16 => f64::from(i16::from_be_bytes(b2)),
        DataType::U32 => f64::from(u32::from_be_bytes(b4)),
        DataType::I32 => f64::from(i32::from_be_bytes(b4)),
        DataType::F32 => shortest_f64(f32::from_be_bytes(b4)),
        // Beyond 2^53 a u64/i64 loses its last digits in f64; counters that large are rare.
        DataType::U64 => u64::from_be_bytes(be) as f64,
        DataType::I64 => i64::from_be_bytes(be) as f64,
        DataType::F64 => f64::from_be_bytes(be),
        DataType::Bit => f64::from((u16::from_be_bytes(b2) >> (bit & 15)) & 1),
        DataType::String => return None,
    })
}

/// A decoded point: a number (raw, before scale and offset) or text.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// Numeric value.
    Number(f64),
    /// Text of a string point.
    Text(String),
}

/// Decodes a point from its registers.
pub fn decode_point(words: &[u16], point: &RegisterAddress) -> Option<Decoded> {
    let ty = point.data_type;
    if ty == DataType::String {
        let words = words.get(..usize::from(point.registers()))?;
        let mut text = String::with_capacity(words.len() * 2);
        for w in words {
            let [hi, lo] = w.to_be_bytes();
            let pair = match point.byte_order {
                ByteOrder::Badc | ByteOrder::Dcba => [lo, hi],
                ByteOrder::Abcd | ByteOrder::Cdab => [hi, lo],
            };
            for b in pair {
                text.push(if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else if b == 0 {
                    '\0'
                } else {
                    '?'
                });
            }
        }
        let trimmed = text.trim_end_matches(['\0', ' ']).replace('\0', " ");
        return Some(Decoded::Text(trimmed));
    }
    decode_number(words, ty, point.byte_order, point.bit.unwrap_or(0)).map(Decoded::Number)
}

/// The last f32 reading of a point: its two registers as read and the value they gave.
pub type F32Memo = Option<([u16; 2], f64)>;

/// [`decode_point`], remembering an f32 point's last registers in `memo`: a value that did not
/// change since the last poll (most of a plant's, most of the time) costs a comparison rather
/// than the search for its shortest decimal.
pub fn decode_point_remembered(
    words: &[u16],
    point: &RegisterAddress,
    memo: &mut F32Memo,
) -> Option<Decoded> {
    if point.data_type != DataType::F32 {
        return decode_point(words, point);
    }
    let raw: [u16; 2] = words.get(..2)?.try_into().ok()?;
    if let Some((last, value)) = *memo {
        if last == raw {
            return Some(Decoded::Number(value));
        }
    }
    let value = decode_registers(&raw, DataType::F32, point.byte_order)?;
    *memo = Some((raw, value));
    Some(Decoded::Number(value))
}

/// The f64 that prints like the f32 (85.3f32 becomes 85.3, not 85.30000305175781): what a
/// PLC programmer typed is what an engineer sees. That is the f64 nearest to the shortest
/// decimal that reads back as the same f32, as `v.to_string().parse()` gives, found without
/// text: the value rounded to the fewest significant digits (1 to 9) that round-trip.
pub fn shortest_f64(v: f32) -> f64 {
    let x = f64::from(v);
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let magnitude = decimal_magnitude(x.abs());
    // The number of digits that first reads back is found by bisection: if the nearest k-digit
    // decimal reads back, so does the nearest (k+1)-digit one (it is at least as close, the
    // k-digit one being a (k+1)-digit decimal too), and 9 digits always do.
    let rounded = |digits: i32| -> Option<f64> {
        // x × 10^shift rounds to an integer of `digits` digits; 10^|shift| ≤ 10^22 is exact in
        // f64, so the division or product below is correctly rounded: the nearest f64 to
        // m × 10^-shift.
        let shift = digits - 1 - magnitude;
        let p = *EXACT_POW10.get(shift.unsigned_abs() as usize)?;
        Some(if shift >= 0 {
            round_half_away(x * p) / p
        } else {
            round_half_away(x / p) * p
        })
    };
    let (mut low, mut high, mut found) = (1, 9, None);
    while low <= high {
        let digits = (low + high) / 2;
        match rounded(digits) {
            Some(c) if c as f32 == v => {
                found = Some(c);
                high = digits - 1;
            }
            Some(_) => low = digits + 1,
            // Beyond 10^±22 (|v| < 10^-13 or > 10^22): by text.
            None => {
                found = None;
                break;
            }
        }
    }
    found.unwrap_or_else(|| v.to_string().parse().unwrap_or(x))
}

/// 10^0 … 10^22: the powers of ten an f64 holds exactly.
const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// 10^-46 … 10^39, correctly rounded: they bracket every finite nonzero f32.
const POW10_F32_RANGE: [f64; 86] = [
    1e-46, 1e-45, 1e-44, 1e-43, 1e-42, 1e-41, 1e-40, 1e-39, 1e-38, 1e-37, 1e-36, 1e-35, 1e-34,
    1e-33, 1e-32, 1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21,
    1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7,
    1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
    1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26,
    1e27, 1e28, 1e29, 1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39,
];

/// ⌊log10 a⌋ for an f32's positive value, without a logarithm: the binary exponent gives it
/// or one less (⌊e2 · log10 2⌋, 78913 / 2^18 ≈ log10 2), and one comparison with a power of
/// ten settles which. The comparison is exact: no f32 lies between 10^k and its nearest f64.
fn decimal_magnitude(a: f64) -> i32 {
    let e2 = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let estimate = (e2 * 78913) >> 18;
    let next = POW10_F32_RANGE
        .get((estimate + 47) as usize)
        .copied()
        .unwrap_or(f64::INFINITY);
    if a >= next {
        estimate + 1
    } else {
        estimate
    }
}

/// `y.round()` (half away from zero) for |y| < 10^10, the range the digit counts above give:
/// a conversion to an integer instead of the libm call x86-64's baseline needs.
fn round_half_away(y: f64) -> f64 {
    let r = (y.abs() + 0.5) as i64 as f64;
    r.copysign(y)
}

/// Engineering value of a point from its raw value.
pub fn engineering(point: &PointConfig, raw: f64) -> f64 {
    raw * point.scale + point.offset
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0x41200000 is 10.0f32; 0xC2F6E979 is -123.456f32.
    #[test]
    fn every_order_decodes_32_bit_values() {
        let cases = [
            (ByteOrder::Abcd, [0x4120, 0x0000]),
            (ByteOrder::Cdab, [0x0000, 0x4120]),
            (ByteOrder::Badc, [0x2041, 0x0000]),
            (ByteOrder::Dcba, [0x0000, 0x2041]),
        ];
        for (order, words) in cases {
            assert_eq!(
                decode_registers(&words, DataType::F32, order),
                Some(10.0),
                "{order:?}"
            );
        }
        let v = decode_registers(&[0xC2F6, 0xE979], DataType::F32, ByteOrder::Abcd).unwrap();
        assert_eq!(
            v, -123.456,
            "f32 values read as the decimal that was written"
        );
        assert_eq!(
            decode_registers(&[0xFFFF, 0xFFFE], DataType::I32, ByteOrder::Abcd),
            Some(-2.0)
        );
        assert_eq!(
            decode_registers(&[0xFFFE, 0xFFFF], DataType::I32, ByteOrder::Cdab),
            Some(-2.0)
        );
        assert_eq!(
            decode_registers(&[0x0001, 0x0002], DataType::U32, ByteOrder::Abcd),
            Some(65538.0)
        );
        assert_eq!(
            decode_registers(&[0x0201, 0x0000], DataType::U32, ByteOrder::Dcba),
            Some(258.0)
        );
    }

    #[test]
    fn single_registers_use_only_the_byte_order() {
        assert_eq!(
            decode_registers(&[0xFF38], DataType::I16, ByteOrder::Abcd),
            Some(-200.0)
        );
        assert_eq!(
            decode_registers(&[0xFF38], DataType::I16, ByteOrder::Cdab),
            Some(-200.0)
        );
        assert_eq!(
            decode_registers(&[0x38FF], DataType::I16, ByteOrder::Badc),
            Some(-200.0)
        );
        assert_eq!(
            decode_registers(&[0x38FF], DataType::I16, ByteOrder::Dcba),
            Some(-200.0)
        );
        assert_eq!(
            decode_registers(&[0xFF38], DataType::U16, ByteOrder::Abcd),
            Some(65336.0)
        );
    }

    #[test]
    fn sixty_four_bit_values_in_every_order() {
        // 0x400921FB54442D18 is π as f64.
        let abcd = [0x4009, 0x21FB, 0x5444, 0x2D18];
        let pi = std::f64::consts::PI;
        assert_eq!(
            decode_registers(&abcd, DataType::F64, ByteOrder::Abcd),
            Some(pi)
        );
        assert_eq!(
            decode_registers(
                &[0x2D18, 0x5444, 0x21FB, 0x4009],
                DataType::F64,
                ByteOrder::Cdab
            ),
            Some(pi)
        );
        assert_eq!(
            decode_registers(
                &[0x0940, 0xFB21, 0x4454, 0x182D],
                DataType::F64,
                ByteOrder::Badc
            ),
            Some(pi)
        );
        assert_eq!(
            decode_registers(
                &[0x182D, 0x4454, 0xFB21, 0x0940],
                DataType::F64,
                ByteOrder::Dcba
            ),
            Some(pi)
        );
        assert_eq!(
            decode_registers(
                &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE],
                DataType::I64,
                ByteOrder::Abcd
            ),
            Some(-2.0)
        );
        assert_eq!(
            decode_registers(&[0, 0, 1, 0], DataType::U64, ByteOrder::Abcd),
            Some(65536.0)
        );
    }

    #[test]
    fn f32_values_read_as_their_shortest_decimal() {
        for v in [
            85.3f32,
            -123.456,
            0.001,
            1.5e6,
            3.4028235e38,
            1e-38,
            f32::MIN_POSITIVE,
            7.0,
        ] {
            assert_eq!(
                shortest_f64(v),
                v.to_string().parse::<f64>().unwrap(),
                "{v}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn shortest_f64_agrees_with_printing_and_parsing(bits: u32) {
            let v = f32::from_bits(bits);
            proptest::prop_assume!(v.is_finite());
            let expected: f64 = v.to_string().parse().unwrap();
            proptest::prop_assert_eq!(shortest_f64(v).to_bits(), expected.to_bits(), "{}", v);
        }
    }

    #[test]
    fn a_remembered_f32_is_decoded_again_only_when_its_registers_change() {
        let point = |order| RegisterAddress {
            register: crate::config::RegisterKind::Holding,
            address: 0,
            data_type: DataType::F32,
            byte_order: order,
            bit: None,
            length: None,
        };
        let mut memo = None;
        let words = |v: f32| [(v.to_bits() >> 16) as u16, v.to_bits() as u16];
        let abcd = point(ByteOrder::Abcd);
        let value = |w: &[u16], memo: &mut F32Memo| match decode_point_remembered(w, &abcd, memo) {
            Some(Decoded::Number(v)) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(value(&words(85.3), &mut memo), 85.3);
        assert_eq!(memo, Some((words(85.3), 85.3)));
        assert_eq!(value(&words(85.3), &mut memo), 85.3);
        assert_eq!(value(&words(-0.25), &mut memo), -0.25);
        assert_eq!(value(&words(85.3), &mut memo), 85.3);
        // The byte order still applies: CDAB registers of 1.5 are the words swapped.
        let w = words(1.5);
        let mut memo = None;
        let cdab = decode_point_remembered(&[w[1], w[0]], &point(ByteOrder::Cdab), &mut memo);
        assert_eq!(cdab, Some(Decoded::Number(1.5)));
        assert_eq!(
            decode_point_remembered(&[w[0]], &abcd, &mut memo),
            None,
            "too short"
        );
    }

    #[test]
    fn short_responses_do_not_decode() {
        assert_eq!(decode_registers(&[1], DataType::F32, ByteOrder::Abcd), None);
    }
}
