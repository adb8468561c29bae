//! The bytes of lines the engine holds while their event time is in doubt, kept until the engine settles them
//! (only a refused one is ever read back, to quarantine it); replay and the service both keep them here. The engine hands out hold tokens in increasing
//! order, so the lines sit in a deque indexed by token and their bytes in one ring: holding a line costs an
//! append and settling it a flag, with no hashing and no allocation per line once the buffers are warm (a fast
//! sender ahead of slow ones can have most lines held, and a map of owned copies was then most of the engine
//! thread's time).

use std::collections::VecDeque;
use std::sync::Arc;

/// One held line: where its bytes are in the arena (absolute offsets) and its line number.
struct Slot {
    line: u64,
    start: usize,
    len: u32,
    settled: bool,
}

/// What names the source of a run of held lines (a shared name live, an input's index in replay).
pub trait SourceTag: Clone {
    /// Whether two lines come from one source, as cheaply as the tag allows.
    fn same(&self, other: &Self) -> bool;
}

impl SourceTag for Arc<str> {
    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(self, other)
    }
}

impl SourceTag for u32 {
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

/// A held line given back when the engine refuses it.
pub struct Refused<'a, S> {
    /// `None` only if the line's run was lost, which the tokens' order rules out.
    pub source: Option<&'a S>,
    pub line: u64,
    pub bytes: &'a [u8],
}

pub struct HeldLines<S> {
    /// Token of `slots[0]`.
    first_token: u64,
    slots: VecDeque<Slot>,
    /// Each run of held lines from one source, by its first token: a source is kept once per batch, not cloned
    /// (an atomic count) per line.
    sources: VecDeque<(u64, S)>,
    /// Bytes of the held lines; `arena[0]` is at absolute offset `arena_base`. A ring, so that dropping spent
    /// bytes from the front moves nothing (moving the rest down was a tenth of the engine thread's time).
    arena: VecDeque<u8>,
    arena_base: usize,
    /// A refused line's bytes, made contiguous when they wrap around the ring.
    scratch: Vec<u8>,
    /// Lines held and not yet settled.
    live: usize,
}

impl<S> Default for HeldLines<S> {
    fn default() -> Self {
        HeldLines {
            first_token: 0,
            slots: VecDeque::new(),
            sources: VecDeque::new(),
            arena: VecDeque::new(),
            arena_base: 0,
            scratch: Vec::new(),
            live: 0,
        }
    }
}

impl<S: SourceTag> HeldLines<S> {
    /// Keeps a held line's bytes. Tokens come from one engine in increasing order; a token below the last one
    /// (a rebuilt engine counting again) starts afresh, since the old engine's tokens will never settle.
    pub fn insert(&mut self, token: u64, source: &S, line: u64, bytes: &[u8]) {
        let next = self.first_token + self.slots.len() as u64;
        if self.slots.is_empty() || token < next {
            self.clear();
            self.first_token = token;
        } else {
            // Tokens the engine used while nobody kept their lines (journal replay) are settled already.
            for _ in next..token {
                self.slots.push_back(Slot {
                    line: 0,
                    start: self.arena_base + self.arena.len(),
                    len: 0,
                    settled: true,
                });
            }
        }
        if !self
            .sources
            .back()
            .is_some_and(|(_, last)| last.same(source))
        {
            self.sources.push_back((token, source.clone()));
        }
        // Bytes are capped at the malformed record's limit (64 KiB) by the caller; u32 is plenty.
        let bytes = &bytes[..bytes.len().min(u32::MAX as usize)];
        let start = self.arena_base + self.arena.len();
        self.arena.extend(bytes);
        self.slots.push_back(Slot {
            line,
            start,
            len: bytes.len() as u32,
            settled: false,
        });
        self.live += 1;
    }

    /// The engine placed the line: its bytes are no longer needed.
    pub fn release(&mut self, token: u64) {
        if let Some(index) = self.unsettled(token) {
            self.slots[index].settled = true;
            self.live -= 1;
            self.trim();
        }
    }

    /// The engine refused the line: `keep` gets its bytes (to quarantine them), then they are dropped.
    pub fn refuse(&mut self, token: u64, keep: impl FnOnce(Refused<'_, S>)) {
        let Some(index) = self.unsettled(token) else {
            return;
        };
        let slot = &mut self.slots[index];
        slot.settled = true;
        let start = slot.start - self.arena_base;
        let (line, end) = (slot.line, start + slot.len as usize);
        let run = self.sources.partition_point(|(first, _)| *first <= token);
        self.scratch.clear();
        self.scratch.extend(self.arena.range(start..end));
        keep(Refused {
            source: run
                .checked_sub(1)
                .and_then(|run| self.sources.get(run))
                .map(|(_, source)| source),
            line,
            bytes: &self.scratch,
        });
        self.live -= 1;
        self.trim();
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.sources.clear();
        self.arena.clear();
        self.arena_base = 0;
        self.live = 0;
    }

    /// The index of the unsettled slot for `token`, if it is one we keep.
    fn unsettled(&self, token: u64) -> Option<usize> {
        let index = usize::try_from(token.checked_sub(self.first_token)?).ok()?;
        self.slots
            .get(index)
            .filter(|slot| !slot.settled)
            .map(|_| index)
    }

    /// Drops settled lines from the front, and their bytes from the ring, so memory stays
    /// at what the oldest unsettled line pins.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(|slot| slot.settled) {
            self.slots.pop_front();
            self.first_token += 1;
        }
        while self
            .sources
            .get(1)
            .is_some_and(|(first, _)| *first <= self.first_token)
        {
            self.sources.pop_front();
        }
        let Some(front) = self.slots.front() else {
            self.arena.clear();
            self.sources.clear();
            return;
        };
        let spent = front.start - self.arena_base;
        if spent > 0 {
            self.arena.drain(..spent);
            self.arena_base = front.start;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(lines: &mut HeldLines<Arc<str>>, token: u64, text: &str) {
        let source: Arc<str> = Arc::from("tcp:test");
        lines.insert(token, &source, token + 1, text.as_bytes());
    }

    fn refused(lines: &mut HeldLines<Arc<str>>, token: u64) -> Option<(u64, String)> {
        let mut got = None;
        lines.refuse(token, |r| {
            got = Some((r.line, String::from_utf8_lossy(r.bytes).into_owned()))
        });
        got
    }

    #[test]
    fn a_refused_line_comes_back_whole_after_others_settle_out_of_order() {
        let mut lines = HeldLines::<Arc<str>>::default();
        for token in 0..6 {
            held(&mut lines, token, &format!("line {token}"));
        }
        lines.release(2);
        lines.release(0);
        lines.release(1);
        assert_eq!(refused(&mut lines, 4), Some((5, "line 4".into())));
        assert_eq!(refused(&mut lines, 3), Some((4, "line 3".into())));
        assert_eq!(lines.live, 1);
        assert_eq!(refused(&mut lines, 5), Some((6, "line 5".into())));
        assert_eq!(lines.live, 0);
        assert!(lines.arena.is_empty(), "nothing pinned once all settled");
    }

    #[test]
    fn unknown_settled_twice_and_gap_tokens_are_ignored() {
        let mut lines = HeldLines::<Arc<str>>::default();
        held(&mut lines, 10, "ten");
        // Tokens 11..13 were held during journal replay: nobody kept them.
        held(&mut lines, 14, "fourteen");
        assert_eq!(refused(&mut lines, 12), None);
        assert_eq!(refused(&mut lines, 3), None);
        lines.release(10);
        lines.release(10);
        assert_eq!(lines.live, 1);
        assert_eq!(refused(&mut lines, 14), Some((15, "fourteen".into())));
        assert_eq!(refused(&mut lines, 14), None);
    }

    #[test]
    fn a_refused_line_keeps_its_own_source_among_runs_of_others() {
        let mut lines = HeldLines::<Arc<str>>::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("tcp:a"), Arc::from("tcp:b"));
        for token in 0..9u64 {
            let source = if (token / 3) % 2 == 0 { &a } else { &b };
            lines.insert(token, source, token + 1, b"x");
        }
        for token in 0..4 {
            lines.release(token);
        }
        let mut seen = Vec::new();
        for token in [8, 5, 4, 6, 7] {
            lines.refuse(token, |r| {
                seen.push((token, r.source.map(|s| s.to_string()).unwrap_or_default()))
            });
        }
        let expected: Vec<(u64, String)> = [
            (8, "tcp:a"),
            (5, "tcp:b"),
            (4, "tcp:b"),
            (6, "tcp:a"),
            (7, "tcp:a"),
        ]
        .map(|(t, s)| (t, s.to_owned()))
        .into();
        assert_eq!(seen, expected);
        assert!(lines.sources.is_empty());
    }

    #[test]
    fn a_rebuilt_engine_counting_from_zero_starts_afresh() {
        let mut lines = HeldLines::<Arc<str>>::default();
        held(&mut lines, 7, "old");
        held(&mut lines, 0, "new");
        assert_eq!(lines.live, 1);
        assert_eq!(refused(&mut lines, 0), Some((1, "new".into())));
    }

    #[test]
    fn memory_stays_bounded_by_what_is_unsettled() {
        let mut lines = HeldLines::<Arc<str>>::default();
        let line = |token: u64| format!("{token:>100}");
        for token in 0..100_000u64 {
            held(&mut lines, token, &line(token));
            if token >= 10 {
                lines.release(token - 10);
            }
        }
        assert_eq!(lines.live, 10);
        assert!(lines.slots.len() <= 11);
        // Long after the ring first wrapped, a refused line still comes back whole.
        assert_eq!(refused(&mut lines, 99_995), Some((99_996, line(99_995))));
        assert!(
            lines.arena.len() <= 100 * 10,
            "arena {} bytes",
            lines.arena.len()
        );
    }
}
