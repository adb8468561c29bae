//! The terminal tables and times every command prints: left-aligned columns, RFC 3339 to the second.

/// RFC 3339 to the second: wall-clock times carry milliseconds nobody reads.
pub fn time(ms: i64) -> String {
    stormwatch_core::rfc3339::format_seconds(ms).unwrap_or_else(|| format!("{ms} ms"))
}

/// Left-aligned columns two spaces apart; the last column is not padded.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut all: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    all.extend(rows);
    let mut widths = vec![0; header.len()];
    for row in &all {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &all {
        let last = row.len().saturating_sub(1);
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if index == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_leaves_the_last_unpadded() {
        let text = table(&["A", "BB"], [vec!["long".into(), "x".into()]]);
        assert_eq!(text, "A     BB\nlong  x\n");
    }

    #[test]
    fn wall_clock_times_are_shown_to_the_second() {
        assert_eq!(time(1_773_133_200_250), "2026-03-10T09:00:00Z");
    }
}
