//! The Sparkplug B payload (Sparkplug 3.0, chapter 6, "Google Protocol Buffers"), written here
//! from the specification's field table as prost messages: only what an edge node sends and
//! reads (no DataSet, Template or extensions, which it never sends and refuses in commands).
//! Field numbers and types are the specification's, so any Sparkplug B decoder reads these.

/// `Payload`: a timestamp (ms since the epoch, UTC), metrics, and the sequence number.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
    #[prost(string, optional, tag = "4")]
    pub uuid: Option<String>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub body: Option<Vec<u8>>,
}

/// `Payload.Metric`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub is_transient: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    #[prost(message, optional, tag = "9")]
    pub properties: Option<PropertySet>,
    #[prost(oneof = "Value", tags = "10, 11, 12, 13, 14, 15, 16")]
    pub value: Option<Value>,
}

/// A metric's value (`Payload.Metric.value`), of the fields an edge node uses.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// Int8, Int16, Int32 (two's complement in 32 bits), UInt8, UInt16, UInt32.
    #[prost(uint32, tag = "10")]
    Int(u32),
    /// Int64 (two's complement), UInt64, DateTime.
    #[prost(uint64, tag = "11")]
    Long(u64),
    #[prost(float, tag = "12")]
    Float(f32),
    #[prost(double, tag = "13")]
    Double(f64),
    #[prost(bool, tag = "14")]
    Boolean(bool),
    #[prost(string, tag = "15")]
    String(String),
    #[prost(bytes = "vec", tag = "16")]
    Bytes(Vec<u8>),
}

/// `Payload.PropertySet`: parallel keys and values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertySet {
    #[prost(string, repeated, tag = "1")]
    pub keys: Vec<String>,
    #[prost(message, repeated, tag = "2")]
    pub values: Vec<PropertyValue>,
}

/// `Payload.PropertyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertyValue {
    #[prost(uint32, optional, tag = "1")]
    pub r#type: Option<u32>,
    #[prost(bool, optional, tag = "2")]
    pub is_null: Option<bool>,
    #[prost(oneof = "PropertyData", tags = "3, 4, 5, 6, 7, 8")]
    pub value: Option<PropertyData>,
}

/// A property's value.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PropertyData {
    #[prost(uint32, tag = "3")]
    Int(u32),
    #[prost(uint64, tag = "4")]
    Long(u64),
    #[prost(float, tag = "5")]
    Float(f32),
    #[prost(double, tag = "6")]
    Double(f64),
    #[prost(bool, tag = "7")]
    Boolean(bool),
    #[prost(string, tag = "8")]
    String(String),
}

/// Sparkplug B datatypes (specification 6.4.16), of those an edge node sends.
pub mod datatype {
    pub const INT8: u32 = 1;
    pub const INT16: u32 = 2;
    pub const INT32: u32 = 3;
    pub const INT64: u32 = 4;
    pub const UINT8: u32 = 5;
    pub const UINT16: u32 = 6;
    pub const UINT32: u32 = 7;
    pub const UINT64: u32 = 8;
    pub const FLOAT: u32 = 9;
    pub const DOUBLE: u32 = 10;
    pub const BOOLEAN: u32 = 11;
    pub const STRING: u32 = 12;
}

impl PropertySet {
    /// Appends a property.
    pub fn push(&mut self, key: &str, datatype: u32, value: PropertyData) {
        self.keys.push(key.to_string());
        self.values.push(PropertyValue {
            r#type: Some(datatype),
            is_null: None,
            value: Some(value),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The bytes of a known payload, worked out by hand from the specification's field numbers:
    /// timestamp (1, varint), seq (3, varint), one metric (2, length-delimited) with name (1),
    /// alias (2), datatype (4) and a boolean value (14).
    #[test]
    fn a_payload_encodes_with_the_specifications_field_numbers() {
        let p = Payload {
            timestamp: Some(1),
            seq: Some(2),
            metrics: vec![Metric {
                name: Some("a".into()),
                alias: Some(3),
                datatype: Some(datatype::BOOLEAN),
                value: Some(Value::Boolean(true)),
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = p.encode_to_vec();
        assert_eq!(
            bytes,
            [
                0x08, 1, // timestamp = 1
                0x12, 9, // metric, 9 bytes
                0x0a, 1, b'a', // name
                0x10, 3, // alias
                0x20, 11, // datatype Boolean
                0x70, 1, // boolean_value = true
                0x18, 2, // seq = 2
            ]
        );
        assert_eq!(Payload::decode(bytes.as_slice()).unwrap(), p);
    }
}
