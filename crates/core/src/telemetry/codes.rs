//! Small fixed-size encodings of SRVs, alert codes and delivery-failure reasons, so events stay `Copy` and never allocate.

use std::fmt;

/// A Service Reference Variant such as `4.1.1` or `11.3`, packed as up to four components of one byte each.
/// `Srv::NONE` stands for "not given".
#[derive(Copy, Clone, Eq, PartialEq, Hash, Ord, PartialOrd, Debug, Default)]
pub struct Srv(pub u32);

impl Srv {
    pub const NONE: Srv = Srv(0);

    /// Parses dotted decimal components (1 to 4, each 0..=254). Returns `None` when it does not fit.
    pub fn parse(text: &str) -> Option<Srv> {
        Self::parse_bytes(text.as_bytes())
    }

    /// [`Srv::parse`] on raw bytes, for the parser's fast path. A component is what `u8::from_str` takes: an
    /// optional `+`, then digits (leading zeros allowed).
    pub fn parse_bytes(text: &[u8]) -> Option<Srv> {
        let mut packed = 0u32;
        for (component, part) in text.split(|&b| b == b'.').enumerate() {
            let digits = part.strip_prefix(b"+").unwrap_or(part);
            if digits.is_empty() || component == 4 {
                return None;
            }
            let mut value = 0u32;
            for &digit in digits {
                if !digit.is_ascii_digit() {
                    return None;
                }
                value = value * 10 + u32::from(digit - b'0');
                if value >= 255 {
                    return None;
                }
            }
            // +1 so that component 0 is distinguishable from "absent".
            packed |= (value + 1) << (24 - 8 * component);
        }
        Some(Srv(packed))
    }

    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Srv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for shift in [24, 16, 8, 0] {
            let byte = (self.0 >> shift) & 0xff;
            if byte == 0 {
                break;
            }
            if !first {
                f.write_str(".")?;
            }
            write!(f, "{}", byte - 1)?;
            first = false;
        }
        Ok(())
    }
}

/// An alert code (`AD1`, `0x8F36`, `N24`, ...) of up to 8 ASCII bytes, packed into a `u64`.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Ord, PartialOrd, Debug, Default)]
pub struct AlertCode(pub u64);

impl AlertCode {
    pub const NONE: AlertCode = AlertCode(0);

    /// Packs the code; codes longer than 8 bytes keep their first 8 bytes (enough to tell them apart in practice).
    pub fn new(text: &str) -> AlertCode {
        Self::from_bytes(text.as_bytes())
    }

    pub fn from_bytes(text: &[u8]) -> AlertCode {
        let mut bytes = [0u8; 8];
        for (slot, byte) in bytes.iter_mut().zip(text) {
            *slot = *byte;
        }
        AlertCode(u64::from_be_bytes(bytes))
    }

    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for AlertCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.to_be_bytes();
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(8);
        f.write_str(&String::from_utf8_lossy(&bytes[..len]))
    }
}

/// Why a delivery attempt failed, as the contract names it.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Default, PartialOrd, Ord)]
#[repr(u8)]
pub enum FailureReason {
    Refused,
    Timeout,
    Tls,
    Http4xx,
    Http5xx,
    #[default]
    Other,
}

impl FailureReason {
    pub const ALL: [FailureReason; 6] = [
        FailureReason::Refused,
        FailureReason::Timeout,
        FailureReason::Tls,
        FailureReason::Http4xx,
        FailureReason::Http5xx,
        FailureReason::Other,
    ];

    pub fn parse(text: &str) -> FailureReason {
        Self::parse_bytes(text.as_bytes())
    }

    pub fn parse_bytes(text: &[u8]) -> FailureReason {
        match text {
            b"refused" => FailureReason::Refused,
            b"timeout" => FailureReason::Timeout,
            b"tls" => FailureReason::Tls,
            b"http_4xx" => FailureReason::Http4xx,
            b"http_5xx" => FailureReason::Http5xx,
            _ => FailureReason::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Refused => "refused",
            FailureReason::Timeout => "timeout",
            FailureReason::Tls => "tls",
            FailureReason::Http4xx => "http_4xx",
            FailureReason::Http5xx => "http_5xx",
            FailureReason::Other => "other",
        }
    }
}

impl serde::Serialize for Srv {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl serde::Serialize for AlertCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl serde::Serialize for FailureReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Srv {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        if text.is_empty() {
            return Ok(Srv::NONE);
        }
        Srv::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an SRV")))
    }
}

impl<'de> serde::Deserialize<'de> for AlertCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(AlertCode::new(&<std::borrow::Cow<'de, str>>::deserialize(
            deserializer,
        )?))
    }
}

impl<'de> serde::Deserialize<'de> for FailureReason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(FailureReason::parse(
            &<std::borrow::Cow<'de, str>>::deserialize(deserializer)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_round_trips() {
        for text in ["4.1.1", "8.1.1", "11.3", "0", "1.0.0.2"] {
            assert_eq!(Srv::parse(text).unwrap().to_string(), text);
        }
        assert_ne!(Srv::parse("1.1"), Srv::parse("1.1.0"));
        for bad in ["", "1..2", "a.b", "1.2.3.4.5", "256.1", "255"] {
            assert_eq!(Srv::parse(bad), None, "{bad}");
        }
    }

    /// The byte parser must take exactly what dotted `u8::from_str` components take.
    fn reference_srv(text: &str) -> Option<Srv> {
        let mut packed = 0u32;
        for (component, part) in text.split('.').enumerate() {
            let value: u8 = part.parse().ok()?;
            if value == u8::MAX || component == 4 {
                return None;
            }
            packed |= u32::from(value + 1) << (24 - 8 * component);
        }
        Some(Srv(packed))
    }

    proptest::proptest! {
        #[test]
        fn srv_bytes_agree_with_dotted_u8(text in "[0-9+.a-]{0,12}|[0-9]{1,3}(\\.[0-9]{1,4}){0,4}") {
            proptest::prop_assert_eq!(Srv::parse(&text), reference_srv(&text), "{}", text);
        }
    }

    #[test]
    fn alert_codes_round_trip() {
        for text in ["AD1", "0x8F36", "N24"] {
            assert_eq!(AlertCode::new(text).to_string(), text);
        }
    }
}
