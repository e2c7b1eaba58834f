//! AMQP message headers as a producer (or a broker's `x-death`) may set them, read the way
//! the service reads every delivery's headers: the table converted, then each header it uses,
//! then a dead letter's summary as `provisioner dlq` reads it.
//!
//! Input: a flag byte (odd: an AMQP timestamp follows, 8 bytes little-endian), then a table:
//! a count byte and that many entries (at most 32), each a name (a byte below 144 picks a
//! header the service reads; any other is followed by a length byte and the name's bytes) and
//! a value (a type byte, then its bytes: integers little-endian, strings length-prefixed,
//! tables as above and arrays as a count byte and values, nested up to 8 levels).
#![no_main]

use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString};
use libfuzzer_sys::fuzz_target;
use provisioner::commands::dlq::DeadLetter;
use provisioner::transport::headers as h;
use provisioner::transport::rabbitmq::from_field_table;
use provisioner::transport::Inbound;

/// Every header the service reads.
const READ: &[&str] = &[
    h::ATTEMPTS,
    h::DURABLE_RETRIES,
    h::RETRY_TIER,
    h::CIRCUIT_PARKED,
    h::FIRST_FAILED_AT,
    h::LAST_FAILED_AT,
    h::LAST_ERROR,
    h::REASON,
    h::ERROR_CODE,
    h::ERROR_MESSAGE,
    h::ORIGINAL_EXCHANGE,
    h::ORIGINAL_ROUTING_KEY,
    h::JOB_ID,
    h::VENDOR,
    h::ACCOUNT,
    h::REPLAY_COUNT,
    h::REPLAY_AUDIT,
    h::TRACEPARENT,
];

const MAX_DEPTH: usize = 8;
const MAX_ENTRIES: usize = 32;

/// The input, consumed from the front.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    /// A length-prefixed run of bytes (one length byte; shorter when the input ends).
    fn run(&mut self) -> Vec<u8> {
        let n = usize::from(self.byte().unwrap_or(0)).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }

    /// A short string: the run as UTF-8 (lossily), cut to the 255 bytes AMQP allows.
    fn short(&mut self) -> ShortString {
        let mut s = String::from_utf8_lossy(&self.run()).into_owned();
        while s.len() > 255 {
            s.pop();
        }
        ShortString::try_new(s).expect("at most 255 bytes")
    }

    /// A header name: mostly one the service reads, so values meet the readers often.
    fn name(&mut self) -> ShortString {
        match self.byte() {
            Some(b) if usize::from(b) < READ.len() * 8 => READ[usize::from(b) % READ.len()].into(),
            _ => self.short(),
        }
    }

    fn value(&mut self, depth: usize) -> Option<AMQPValue> {
        let tag = self.byte()?;
        Some(match tag % 18 {
            0 => AMQPValue::Boolean(self.byte()? & 1 == 1),
            1 => AMQPValue::ShortShortInt(i8::from_le_bytes(self.array()?)),
            2 => AMQPValue::ShortShortUInt(self.byte()?),
            3 => AMQPValue::ShortInt(i16::from_le_bytes(self.array()?)),
            4 => AMQPValue::ShortUInt(u16::from_le_bytes(self.array()?)),
            5 => AMQPValue::LongInt(i32::from_le_bytes(self.array()?)),
            6 => AMQPValue::LongUInt(u32::from_le_bytes(self.array()?)),
            7 => AMQPValue::LongLongInt(i64::from_le_bytes(self.array()?)),
            8 => AMQPValue::Float(f32::from_le_bytes(self.array()?)),
            9 => AMQPValue::Double(f64::from_le_bytes(self.array()?)),
            10 => {
                AMQPValue::DecimalValue(DecimalValue { scale: self.byte()?, value: u32::from_le_bytes(self.array()?) })
            }
            11 => AMQPValue::ShortString(self.short()),
            // Raw bytes: a long string need not be UTF-8 on the wire.
            12 => AMQPValue::LongString(LongString::from(self.run())),
            13 => AMQPValue::Timestamp(u64::from_le_bytes(self.array()?)),
            14 => AMQPValue::ByteArray(ByteArray::from(self.run())),
            15 => AMQPValue::Void,
            16 if depth < MAX_DEPTH => AMQPValue::FieldTable(self.table(depth + 1)),
            17 if depth < MAX_DEPTH => {
                let mut items = FieldArray::default();
                for _ in 0..usize::from(self.byte()?).min(MAX_ENTRIES) {
                    let Some(v) = self.value(depth + 1) else { break };
                    items.push(v);
                }
                AMQPValue::FieldArray(items)
            }
            _ => AMQPValue::Void,
        })
    }

    fn table(&mut self, depth: usize) -> FieldTable {
        let mut table = FieldTable::default();
        for _ in 0..usize::from(self.byte().unwrap_or(0)).min(MAX_ENTRIES) {
            let name = self.name();
            let Some(value) = self.value(depth) else { break };
            table.insert(name, value);
        }
        table
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes(data);
    let timestamp = match input.byte() {
        Some(flag) if flag & 1 == 1 => input.array().map(u64::from_le_bytes),
        _ => None,
    };
    let table = input.table(0);
    let headers = from_field_table(Some(&table));
    for name in READ {
        let _ = h::text(&headers, name);
        let _ = h::int(&headers, name);
    }
    let dead = Inbound {
        body: Vec::new(),
        exchange: "provisioning.dlx".into(),
        routing_key: "create_user.glance".into(),
        message_id: None,
        content_type: None,
        timestamp,
        redelivered: false,
        headers,
    };
    let _ = DeadLetter::read(&dead);
});
