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

    /// [`Eui64::parse`] on raw bytes (the parser's fast path works on bytes). Every telemetry line carries an ID,
    /// so this reads a pair of digits with one look-up and checks validity once at the end, without branches.
    pub fn parse_bytes(bytes: &[u8]) -> Option<Eui64> {
        if let Ok(plain) = <&[u8; 16]>::try_from(bytes) {
            return hex_pairs(|k| [plain[2 * k], plain[2 * k + 1]], 0);
        }
        // Fixed-size arrays and constant offsets: the compiler unrolls the pairs and drops every bounds check.
        let spelled = <&[u8; 23]>::try_from(bytes).ok()?;
        let separator = spelled[2];
        if separator != b'-' && separator != b':' {
            return None;
        }
        let odd_separators = (0..7).fold(0u16, |odd, k| {
            odd | u16::from(spelled[3 * k + 2] != separator)
        });
        hex_pairs(
            |k| [spelled[3 * k], spelled[3 * k + 1]],
            odd_separators << 8,
        )
    }
}

/// Eight pairs of hex digits, the `k`th from `pair(k)`; `invalid` above 0xff already refuses the ID.
#[inline(always)]
fn hex_pairs(pair: impl Fn(usize) -> [u8; 2], mut invalid: u16) -> Option<Eui64> {
    let mut value = 0u64;
    for k in 0..8 {
        let [first, second] = pair(k);
        let byte = HEX_PAIRS[usize::from(first) << 8 | usize::from(second)];
        invalid |= byte;
        value = (value << 8) | u64::from(byte & 0xff);
    }
    (invalid < 0x100).then_some(Eui64(value))
}

/// The byte a pair of ASCII hex digits spells, indexed by `first << 8 | second`; 0x100 marks a pair that is not
/// two hex digits. (128 KiB, of which parsing touches the few hundred entries of real digit pairs.)
static HEX_PAIRS: [u16; 1 << 16] = {
    const fn digit(byte: u8) -> u16 {
        match byte {
            b'0'..=b'9' => (byte - b'0') as u16,
            b'a'..=b'f' => (byte - b'a' + 10) as u16,
            b'A'..=b'F' => (byte - b'A' + 10) as u16,
            _ => 0x100,
        }
    }
    let mut table = [0u16; 1 << 16];
    let mut index = 0;
    while index < table.len() {
        let (high, low) = (digit((index >> 8) as u8), digit(index as u8));
        table[index] = if high | low >= 0x100 {
            0x100
        } else {
            high << 4 | low
        };
        index += 1;
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

    /// The reference: pairs of hex digits read one by one, with one separator style throughout.
    fn reference_parse(text: &str) -> Option<Eui64> {
        let separator = match text.len() {
            16 => None,
            23 => Some(text.as_bytes()[2]).filter(|s| matches!(s, b'-' | b':')),
            _ => return None,
        };
        let digits: String = match separator {
            None => text.to_owned(),
            Some(sep) => {
                let parts: Vec<&str> = text.split(char::from(sep)).collect();
                if parts.len() != 8 || parts.iter().any(|p| p.len() != 2) {
                    return None;
                }
                parts.concat()
            }
        };
        if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(&digits, 16).ok().map(Eui64)
    }

    proptest::proptest! {
        #[test]
        fn bytes_parse_agrees_with_the_reference(
            text in "[0-9a-fA-F]{16}|([0-9a-fA-FgG/:@`-]{2}[-:]){7}[0-9a-fA-F]{2}|[ -~]{15,24}|.{16}"
        ) {
            proptest::prop_assert_eq!(Eui64::parse(&text), reference_parse(&text), "{}", text);
        }
    }

    #[test]
    fn every_hex_digit_in_either_case_decodes() {
        assert_eq!(
            Eui64::parse("0123456789abcdef"),
            Some(Eui64(0x0123_4567_89ab_cdef))
        );
        assert_eq!(
            Eui64::parse("FEDCBA9876543210"),
            Some(Eui64(0xfedc_ba98_7654_3210))
        );
        for edge in ['/', ':', '@', 'G', '`', 'g', '\u{7f}'] {
            let text = format!("00000000000000{edge}0");
            assert_eq!(Eui64::parse(&text), None, "{text}");
        }
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
