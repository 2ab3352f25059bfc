//! Modbus: the data model (register tables, data types, byte orders) and the TCP poller.

mod tcp;

pub use tcp::ModbusTcpPoller;

use crate::config::{ByteOrder, DataType, PointConfig};

/// Decodes the raw registers of a numeric point (before scale and offset).
///
/// Each register arrives on the wire as two bytes, high byte first (Modbus Application
/// Protocol v1.1b3, §4.2), so `words` are first laid out as wire bytes and then reordered
/// from the configured order into big-endian A..D.
pub fn decode_registers(words: &[u16], ty: DataType, order: ByteOrder) -> Option<f64> {
    let n = usize::from(ty.registers());
    if words.len() < n {
        return None;
    }
    let mut wire = [0u8; 4];
    for (i, w) in words.iter().take(n).enumerate() {
        let [hi, lo] = w.to_be_bytes();
        wire[2 * i] = hi;
        wire[2 * i + 1] = lo;
    }
    let wire = &wire[..2 * n];
    let mut be = [0u8; 4];
    let be = &mut be[..2 * n];
    for (i, b) in be.iter_mut().enumerate() {
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
    Some(match ty {
        DataType::Bool => f64::from(u8::from(words[0] != 0)),
        DataType::U16 => f64::from(u16::from_be_bytes([be[0], be[1]])),
        DataType::I16 => f64::from(i16::from_be_bytes([be[0], be[1]])),
        DataType::U32 => f64::from(u32::from_be_bytes([be[0], be[1], be[2], be[3]])),
        DataType::I32 => f64::from(i32::from_be_bytes([be[0], be[1], be[2], be[3]])),
        DataType::F32 => shortest_f64(f32::from_be_bytes([be[0], be[1], be[2], be[3]])),
    })
}

/// The f64 that prints like the f32 (85.3f32 becomes 85.3, not 85.30000305175781): what a
/// PLC programmer typed is what an engineer sees.
fn shortest_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
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
    fn short_responses_do_not_decode() {
        assert_eq!(decode_registers(&[1], DataType::F32, ByteOrder::Abcd), None);
    }
}
