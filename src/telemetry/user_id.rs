//! DCC User IDs (EUI-64): parsing every spelling the contract allows, and the canonical upper-case hyphenated form.

use std::fmt;

/// A DCC User ID or device ID, an EUI-64 held as its 64-bit value.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Ord, PartialOrd, Debug, Default)]
pub struct Eui64(pub u64);

impl Eui64 {
    /// Parses 16 hex digits, optionally separated in pairs by `-` or `:` (one separator style per ID).
    /// Case-insensitive. Returns `None` for anything else.
    pub fn parse(text: &str) -> Option<Eui64> {
        Self::parse_bytes(text.as_bytes())
    }

    /// [`Eui64::parse`] on raw bytes (the parser's fast path works on bytes).
    pub fn parse_bytes(bytes: &[u8]) -> Option<Eui64> {
        // Byte offsets of the 16 digits; separators sit between pairs in the 23-byte spellings.
        let (step, separator) = match bytes.len() {
            16 => (2, None),
            23 => match bytes[2] {
                sep @ (b'-' | b':') => (3, Some(sep)),
                _ => return None,
            },
            _ => return None,
        };
        let mut value = 0u64;
        for pair in 0..8 {
            let at = pair * step;
            let (high, low) = (HEX[usize::from(bytes[at])], HEX[usize::from(bytes[at + 1])]);
            if (high | low) > 0x0f {
                return None;
            }
            if let Some(sep) = separator
                && pair < 7
                && bytes[at + 2] != sep
            {
                return None;
            }
            value = (value << 8) | u64::from((high << 4) | low);
        }
        Some(Eui64(value))
    }
}

/// Hex digit values; 0xff marks a byte that is not a hex digit.
const HEX: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

impl fmt::Display for Eui64 {
    /// The report form: upper-case, hyphen-separated pairs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_be_bytes();
        write!(
            f,
            "{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

impl serde::Serialize for Eui64 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Eui64 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Eui64::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not an EUI-64 (16 hex digits, optionally in pairs separated by - or :)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_spelling_is_the_same_user() {
        let canonical = Eui64::parse("90-B3-D5-1F-30-01-00-07").unwrap();
        for spelling in [
            "90b3d51f30010007",
            "90:B3:D5:1F:30:01:00:07",
            "90-b3-d5-1f-30-01-00-07",
            "90B3D51F30010007",
        ] {
            assert_eq!(Eui64::parse(spelling), Some(canonical), "{spelling}");
        }
        assert_eq!(canonical.to_string(), "90-B3-D5-1F-30-01-00-07");
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "90b3d51f3001000",
            "90b3d51f300100070",
            "90-B3:D5-1F-30-01-00-07",
            "90-B3-D5-1F-30-01-00-0G",
            "90 B3 D5 1F 30 01 00 07",
            "DCC",
        ] {
            assert_eq!(Eui64::parse(bad), None, "{bad}");
        }
    }
}
