//! A regular file's two versions: as written, and as of its last fsync.

/// A regular file's bytes as written and as of its last fsync.
#[derive(Clone, Debug, Default)]
pub(super) struct FileData {
    pub(super) data: Vec<u8>,
    pub(super) synced: Vec<u8>,
    /// `data[..d] == synced[..d]` for `d = dirty_from`; `None` when the two are equal. Lets
    /// an fsync of an append-only file (a WAL) copy only the new tail instead of the whole
    /// file, which would make a long test quadratic.
    dirty_from: Option<usize>,
}

impl FileData {
    pub(super) fn clean(bytes: Vec<u8>) -> FileData {
        FileData {
            data: bytes.clone(),
            synced: bytes,
            dirty_from: None,
        }
    }

    pub(super) fn touch(&mut self, from: usize) {
        let from = from.min(self.data.len());
        self.dirty_from = Some(self.dirty_from.map_or(from, |d| d.min(from)));
    }

    pub(super) fn write(&mut self, offset: usize, bytes: &[u8]) {
        self.touch(offset);
        let end = offset + bytes.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[offset..end].copy_from_slice(bytes);
    }

    pub(super) fn resize(&mut self, len: usize) {
        self.touch(len);
        self.data.resize(len, 0);
    }

    pub(super) fn sync(&mut self) {
        if let Some(d) = self.dirty_from.take() {
            self.synced.truncate(d);
            self.synced.extend_from_slice(&self.data[d..]);
        }
    }
}
