//! Unit tests of the journal's bytes: frames, checksums, sequence numbers, torn tails and damage in the middle.
use super::*;
use proptest::prelude::*;

/// A journal of `batches` as the writer lays it out.
fn journal_bytes(batches: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = file_header(9).to_vec();
    let mut ends = Vec::new();
    for (sequence, batch) in batches.iter().enumerate() {
        bytes.extend_from_slice(&frame_head(BATCH, sequence as u64, &[batch]));
        bytes.extend_from_slice(batch);
        ends.push(bytes.len());
    }
    (bytes, ends)
}

fn batches() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..12)
}

proptest! {
    /// Cut anywhere: every batch wholly before the cut comes back, in order, nothing else, and nothing counts as
    /// lost in the middle.
    #[test]
    fn a_truncated_journal_keeps_every_whole_batch(batches in batches(), cut in any::<prop::sample::Index>()) {
        let (bytes, ends) = journal_bytes(&batches);
        let cut = FILE_HEADER_LEN + cut.index(bytes.len() - FILE_HEADER_LEN + 1);
        let read = read(&bytes[..cut]);
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        let expected: Vec<Entry> = batches[..whole].iter().cloned().map(Entry::Batch).collect();
        prop_assert_eq!(&read.entries, &expected);
        prop_assert!(!read.damage.loses_data());
        let last_end = if whole == 0 { FILE_HEADER_LEN } else { ends[whole - 1] };
        prop_assert_eq!(read.good_len, last_end);
        prop_assert_eq!(read.damage.torn_tail_bytes, (cut - last_end) as u64);
    }

    /// One flipped byte anywhere after the header: the reader never returns a batch that was not written,
    /// keeps every batch the flip did not touch, and says what it lost.
    #[test]
    fn a_flipped_byte_is_never_replayed_and_never_silent(
        batches in batches(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (mut bytes, ends) = journal_bytes(&batches);
        let at = FILE_HEADER_LEN + at.index(bytes.len() - FILE_HEADER_LEN);
        bytes[at] ^= flip;
        let read = read(&bytes);
        let hit = ends.iter().position(|&end| at < end).unwrap_or(batches.len() - 1);
        let expected: Vec<Entry> = batches
            .iter()
            .enumerate()
            .filter(|&(index, _)| index != hit)
            .map(|(_, batch)| Entry::Batch(batch.clone()))
            .collect();
        prop_assert_eq!(&read.entries, &expected);
        prop_assert!(!read.damage.is_clean(), "the damage is reported");
        if hit + 1 < batches.len() {
            prop_assert!(read.damage.loses_data());
            prop_assert_eq!(read.damage.lost_frames, 1);
        }
    }
}

#[test]
fn a_damaged_header_reads_as_no_journal() {
    let (mut bytes, _) = journal_bytes(&[b"line\n".to_vec()]);
    bytes[9] ^= 1;
    let read = read(&bytes);
    assert_eq!(read.generation, None);
    assert!(read.entries.is_empty());
}
