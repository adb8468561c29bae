//! Malformed lines of every type the contract names, made to look like what broken exporters really write.

use rand::Rng;
use rand::rngs::StdRng;

use super::format::{Spelling, push_eui, push_i64};

/// The contract's longest valid line; longer ones are malformed.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// (type, weight): oversized lines are rare, so that fixtures stay small.
const TYPES: [(Malformed, u32); 11] = [
    (Malformed::TruncatedJson, 20),
    (Malformed::BadUtf8, 10),
    (Malformed::MissingField, 15),
    (Malformed::UnknownEvent, 10),
    (Malformed::BadCount, 10),
    (Malformed::DepthWithoutDepth, 8),
    (Malformed::BadUser, 10),
    (Malformed::BadTs, 8),
    (Malformed::NotAnObject, 5),
    (Malformed::ProxyPage, 2),
    (Malformed::Oversized, 2),
];

#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum Malformed {
    TruncatedJson,
    BadUtf8,
    MissingField,
    UnknownEvent,
    BadCount,
    DepthWithoutDepth,
    BadUser,
    BadTs,
    NotAnObject,
    /// An HTTP error page that a proxy put into the stream.
    ProxyPage,
    Oversized,
}

fn choose(rng: &mut StdRng) -> Malformed {
    let total: u32 = TYPES.iter().map(|t| t.1).sum();
    let mut roll = rng.random_range(0..total);
    for (kind, weight) in TYPES {
        if roll < weight {
            return kind;
        }
        roll -= weight;
    }
    Malformed::TruncatedJson
}

fn head(buf: &mut Vec<u8>, ts: i64, user: u64) {
    buf.extend_from_slice(b"{\"ts\":");
    push_i64(buf, ts);
    buf.extend_from_slice(b",\"user\":\"");
    push_eui(buf, user, Spelling::Hyphen);
    buf.push(b'"');
}

/// Appends one malformed line (without its newline) that looks like it belongs at `ts` to `user`.
pub(crate) fn push_malformed(buf: &mut Vec<u8>, rng: &mut StdRng, ts: i64, user: u64) {
    push_kind(buf, choose(rng), rng, ts, user);
}

pub(crate) fn push_kind(buf: &mut Vec<u8>, kind: Malformed, rng: &mut StdRng, ts: i64, user: u64) {
    let variant = rng.random_range(0..4u32);
    match kind {
        Malformed::TruncatedJson => {
            let start = buf.len();
            head(buf, ts, user);
            buf.extend_from_slice(b",\"event\":\"queued\",\"kind\":\"device_alert\",\"count\":12}");
            let keep = rng.random_range(8..buf.len() - start - 1);
            buf.truncate(start + keep);
        }
        Malformed::BadUtf8 => {
            head(buf, ts, user);
            buf.extend_from_slice(b",\"event\":\"request\",\"srv\":\"4.1");
            buf.extend_from_slice(&[0xff, 0xfe, 0xc3]);
            buf.extend_from_slice(b"\"}");
        }
        Malformed::MissingField => match variant {
            0 => {
                buf.extend_from_slice(b"{\"user\":\"");
                push_eui(buf, user, Spelling::Hyphen);
                buf.extend_from_slice(b"\",\"event\":\"delivered\",\"count\":4}");
            }
            1 => {
                buf.extend_from_slice(b"{\"ts\":");
                push_i64(buf, ts);
                buf.extend_from_slice(b",\"event\":\"queued\"}");
            }
            _ => {
                head(buf, ts, user);
                buf.extend_from_slice(b",\"count\":3}");
            }
        },
        Malformed::UnknownEvent => {
            head(buf, ts, user);
            let event: &[u8] =
                [b"teleported".as_slice(), b"acked", b"delivery_retry", b""][variant as usize];
            buf.extend_from_slice(b",\"event\":\"");
            buf.extend_from_slice(event);
            buf.extend_from_slice(b"\"}");
        }
        Malformed::BadCount => {
            head(buf, ts, user);
            let count: &[u8] = [b"0".as_slice(), b"-3", b"1.5", b"\"12\""][variant as usize];
            buf.extend_from_slice(b",\"event\":\"delivered\",\"count\":");
            buf.extend_from_slice(count);
            buf.push(b'}');
        }
        Malformed::DepthWithoutDepth => {
            head(buf, ts, user);
            let depth: &[u8] = [
                b"".as_slice(),
                b",\"depth\":-5",
                b",\"depth\":\"many\"",
                b",\"depth\":null",
            ][variant as usize];
            buf.extend_from_slice(b",\"event\":\"depth\"");
            buf.extend_from_slice(depth);
            buf.push(b'}');
        }
        Malformed::BadUser => {
            buf.extend_from_slice(b"{\"ts\":");
            push_i64(buf, ts);
            let bad: &[u8] = [
                b"\"90-B3-D5-1F-30-01-00\"".as_slice(),
                b"\"DCC\"",
                b"\"90-B3:D5-1F-30-01-00-07\"",
                b"36028797018963975",
            ][variant as usize];
            buf.extend_from_slice(b",\"user\":");
            buf.extend_from_slice(bad);
            buf.extend_from_slice(b",\"event\":\"request\",\"srv\":\"2.2\"}");
        }
        Malformed::BadTs => {
            let bad: &[u8] = [
                b"\"yesterday\"".as_slice(),
                b"null",
                b"\"2026-13-45T25:61:00Z\"",
                b"true",
            ][variant as usize];
            buf.extend_from_slice(b"{\"ts\":");
            buf.extend_from_slice(bad);
            buf.extend_from_slice(b",\"user\":\"");
            push_eui(buf, user, Spelling::Compact);
            buf.extend_from_slice(b"\",\"event\":\"delivered\"}");
        }
        Malformed::NotAnObject => {
            let text: &[u8] =
                [b"[1,2,3]".as_slice(), b"\"queued\"", b"42", b"null"][variant as usize];
            buf.extend_from_slice(text);
        }
        Malformed::ProxyPage => {
            buf.extend_from_slice(
                b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            );
        }
        Malformed::Oversized => {
            // Otherwise valid: only its length makes it malformed.
            head(buf, ts, user);
            buf.extend_from_slice(b",\"event\":\"queued\",\"debug\":\"");
            let pad = MAX_LINE + rng.random_range(100..2000);
            buf.resize(buf.len() + pad, b'x');
            buf.extend_from_slice(b"\"}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Each type breaks exactly one of the contract's rules, checked here without the engine's parser.
    #[test]
    fn every_type_is_invalid() {
        let mut rng = StdRng::seed_from_u64(5);
        for (kind, _) in TYPES {
            for _ in 0..8 {
                let mut buf = Vec::new();
                push_kind(
                    &mut buf,
                    kind,
                    &mut rng,
                    1_773_133_200_000,
                    0x90B3_D51F_3001_0007,
                );
                assert!(!buf.contains(&b'\n'));
                let valid = match std::str::from_utf8(&buf) {
                    Err(_) => false,
                    Ok(text) => match serde_json::from_str::<serde_json::Value>(text) {
                        Err(_) => false,
                        Ok(value) => looks_valid(&value) && buf.len() <= MAX_LINE,
                    },
                };
                assert!(
                    !valid,
                    "{kind:?}: {}",
                    String::from_utf8_lossy(&buf[..buf.len().min(200)])
                );
            }
        }
    }

    fn looks_valid(value: &serde_json::Value) -> bool {
        let Some(object) = value.as_object() else {
            return false;
        };
        let ts_ok = object
            .get("ts")
            .is_some_and(|ts| ts.is_i64() || ts.as_str().is_some_and(|s| s.starts_with("2026-03")));
        let user_ok = object
            .get("user")
            .and_then(|u| u.as_str())
            .is_some_and(|u| stormwatch_core::telemetry::Eui64::parse(u).is_some());
        let event = object.get("event").and_then(|e| e.as_str()).unwrap_or("");
        let event_ok = [
            "request",
            "queued",
            "delivered",
            "delivery_failed",
            "expired",
            "depth",
        ]
        .contains(&event);
        let count_ok = object
            .get("count")
            .is_none_or(|c| c.as_u64().is_some_and(|c| c >= 1));
        let depth_ok =
            event != "depth" || object.get("depth").is_some_and(|d| d.as_u64().is_some());
        ts_ok && user_ok && event_ok && count_ok && depth_ok
    }
}
