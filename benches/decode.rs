//! Register decoding beside a bare `f32::from_be_bytes`, side by side in alternating rounds:
//! an f32 point read (byte order, then the shortest decimal the PLC's value prints as) over
//! three kinds of values. `cargo bench --bench decode`.

mod side;

use qis_edge::config::{ByteOrder, DataType, RegisterAddress, RegisterKind};
use qis_edge::sources::modbus::{decode_point_remembered, decode_registers, Decoded, F32Memo};
use side::{compare, Side};
use std::hint::black_box;

const VALUES: usize = 4096;
const PASSES: usize = 200;

/// The two registers of `v` as a device sends them in `order`.
fn words(v: f32, order: ByteOrder) -> [u16; 2] {
    let b = v.to_bits();
    let (hi, lo) = ((b >> 16) as u16, b as u16);
    match order {
        ByteOrder::Abcd => [hi, lo],
        ByteOrder::Cdab => [lo, hi],
        ByteOrder::Badc => [hi.swap_bytes(), lo.swap_bytes()],
        ByteOrder::Dcba => [lo.swap_bytes(), hi.swap_bytes()],
    }
}

fn main() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let sets: [(&str, Vec<f32>); 3] = [
        // Set points and counters as typed: one to four digits (85.3, 120.5).
        (
            "typed values",
            (0..VALUES).map(|i| (i % 2000) as f32 / 10.0).collect(),
        ),
        // A slow process value: about seven digits.
        (
            "process values",
            (0..VALUES).map(|i| i as f32 * 0.37).collect(),
        ),
        // A noisy analogue input: eight or nine digits.
        (
            "noisy sensor",
            (0..VALUES).map(|_| 100.0 * next()).collect(),
        ),
    ];
    for (name, values) in &sets {
        let abcd: Vec<[u16; 2]> = values.iter().map(|&v| words(v, ByteOrder::Abcd)).collect();
        let cdab: Vec<[u16; 2]> = values.iter().map(|&v| words(v, ByteOrder::Cdab)).collect();
        let point = RegisterAddress {
            register: RegisterKind::Holding,
            address: 0,
            data_type: DataType::F32,
            byte_order: ByteOrder::Abcd,
            bit: None,
            length: None,
        };
        let mut memos: Vec<F32Memo> = vec![None; VALUES];
        let mut sides = [
            Side::new("bare f32::from_be_bytes", || {
                let mut sum = 0.0f64;
                for _ in 0..PASSES {
                    for w in black_box(&abcd) {
                        let [a, b] = w[0].to_be_bytes();
                        let [c, d] = w[1].to_be_bytes();
                        sum += f64::from(f32::from_be_bytes([a, b, c, d]));
                    }
                }
                black_box(sum);
                (PASSES * VALUES) as u64
            }),
            Side::new("decode_registers ABCD (value changed)", || {
                let mut sum = 0.0f64;
                for _ in 0..PASSES {
                    for w in black_box(&abcd) {
                        sum += decode_registers(w, DataType::F32, ByteOrder::Abcd).unwrap_or(0.0);
                    }
                }
                black_box(sum);
                (PASSES * VALUES) as u64
            }),
            Side::new("decode_registers CDAB (value changed)", || {
                let mut sum = 0.0f64;
                for _ in 0..PASSES {
                    for w in black_box(&cdab) {
                        sum += decode_registers(w, DataType::F32, ByteOrder::Cdab).unwrap_or(0.0);
                    }
                }
                black_box(sum);
                (PASSES * VALUES) as u64
            }),
            // As the poller reads: the registers of the last poll remembered per point, the
            // values unchanged since (most of a plant's between two polls).
            Side::new("poller's decode, value unchanged", || {
                let mut sum = 0.0f64;
                for _ in 0..PASSES {
                    for (w, memo) in black_box(&abcd).iter().zip(memos.iter_mut()) {
                        if let Some(Decoded::Number(v)) = decode_point_remembered(w, &point, memo) {
                            sum += v;
                        }
                    }
                }
                black_box(sum);
                (PASSES * VALUES) as u64
            }),
        ];
        compare(&format!("f32 decode, {name}"), 7, &mut sides);
    }
}
