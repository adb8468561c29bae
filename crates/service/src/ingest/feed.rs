//! What a TCP connection task holds before its lines flow: the bytes read with the `AUTH` and `ACK ON` lines and
//! not yet taken (`Feed`). Shared by the plain listener (`tcp.rs`) and the acknowledged protocol (`ack.rs`); the
//! rest becomes the start of the connection's first block (`blocks.rs`).

#[derive(Default)]
pub(crate) struct Feed {
    pub(crate) bytes: Vec<u8>,
    pub(crate) taken: usize,
    pub(crate) eof: bool,
}

impl Feed {
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.room(data.len());
        self.bytes.extend_from_slice(data);
    }

    /// Makes room for at least `want` more bytes (starting over once everything was taken); returns the room.
    pub(crate) fn room(&mut self, want: usize) -> usize {
        if self.taken == self.bytes.len() {
            self.bytes.clear();
            self.taken = 0;
        }
        self.bytes.reserve(want);
        self.bytes.capacity() - self.bytes.len()
    }

    /// The bytes not taken yet, and whether the connection already ended.
    pub(crate) fn into_rest(mut self) -> (Vec<u8>, bool) {
        self.bytes.drain(..self.taken);
        (self.bytes, self.eof)
    }
}
