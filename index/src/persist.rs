//! Segment file format and atomic save / verified load.
//!
//! Layout, all integers little-endian (format version 1):
//!
//! ```text
//! "CHIX"  u16 version  u16 reserved(0)
//! u64 doc_count, then doc_count × u64 tweet id (doc order)
//! u64 len, roaring bitmap of tombstoned docs (portable roaring format)
//! u64 tag_count, then per tag (sorted by name, for reproducible files):
//!     u32 name_len, UTF-8 name, u64 len, roaring bitmap of docs
//! u32 CRC-32 (IEEE) of every preceding byte
//! ```
//!
//! The magic and the CRC footer are version-independent framing: load checks
//! them before trusting the version field, so a flipped bit anywhere reports
//! `Corrupt` rather than a misleading `UnsupportedVersion`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use roaring::RoaringBitmap;

use crate::error::{Error, Result};
use crate::index::TagIndex;

const MAGIC: &[u8; 4] = b"CHIX";
/// Segment format version written by this build.
pub const FORMAT_VERSION: u16 = 1;
// magic + version + reserved + doc_count + deleted len + tag_count + crc
const MIN_LEN: usize = 4 + 2 + 2 + 8 + 8 + 8 + 4;

impl TagIndex {
    /// Writes the index atomically to `path` (temp file, fsync, rename, fsync dir).
    ///
    /// Readers see either the previous file or the complete new one, never a
    /// torn write. Only one save per path may run at a time.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = temp_path(path)?;
        let written = self.write_file(&tmp);
        if let Err(e) = written {
            // Best effort: the original error matters more than cleanup failing.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        sync_parent_dir(path)
    }

    /// Reads and verifies a segment written by [`TagIndex::save`].
    pub fn load(path: &Path) -> Result<TagIndex> {
        let file = File::open(path)?;
        // Mapping an empty file fails on some platforms; report it as truncation.
        if file.metadata()?.len() < MIN_LEN as u64 {
            return Err(corrupt("file shorter than the fixed header and footer"));
        }
        // SAFETY: the map is read-only and dropped before returning. `save`
        // never writes a published file in place (it renames a fresh one), so
        // the only hazard is some other process truncating the file under us,
        // which is outside this crate's contract.
        let map = unsafe { Mmap::map(&file)? };
        Self::from_bytes(&map)
    }

    /// Serializes the index in segment format (including CRC footer) to `out`.
    pub fn write_to<W: Write>(&self, out: W) -> Result<()> {
        let mut w = CrcWriter {
            inner: out,
            crc: crc32fast::Hasher::new(),
        };
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT_VERSION.to_le_bytes())?;
        w.write_all(&0u16.to_le_bytes())?;
        let ids = self.order.ids();
        w.write_all(&(ids.len() as u64).to_le_bytes())?;
        for id in ids {
            w.write_all(&id.to_le_bytes())?;
        }
        write_bitmap(&mut w, &self.deleted)?;
        let mut names: Vec<&String> = self.tags.keys().collect();
        names.sort_unstable();
        w.write_all(&(names.len() as u64).to_le_bytes())?;
        for name in names {
            let len = u32::try_from(name.len()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "tag longer than 4 GiB")
            })?;
            w.write_all(&len.to_le_bytes())?;
            w.write_all(name.as_bytes())?;
            if let Some(postings) = self.tags.get(name) {
                write_bitmap(&mut w, postings)?;
            }
        }
        let crc = w.crc.finalize();
        w.inner.write_all(&crc.to_le_bytes())?;
        w.inner.flush()?;
        Ok(())
    }

    /// Parses and verifies a segment held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<TagIndex> {
        if bytes.len() < MIN_LEN {
            return Err(corrupt("file shorter than the fixed header and footer"));
        }
        let (body, footer) = bytes.split_at(bytes.len() - 4);
        if &body[..4] != MAGIC {
            return Err(corrupt("bad magic, not a CHIX segment"));
        }
        let stored = u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]);
        if crc32fast::hash(body) != stored {
            return Err(corrupt("checksum mismatch"));
        }
        let mut r = Reader { rest: &body[4..] };
        let version = r.u16()?;
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if r.u16()? != 0 {
            return Err(corrupt("reserved header field is not zero"));
        }

        let doc_count = r.u64()?;
        let id_bytes = doc_count
            .checked_mul(8)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| corrupt("doc count overflows"))?;
        let mut ix = TagIndex::new();
        for chunk in r.take(id_bytes)?.chunks_exact(8) {
            let mut id = [0u8; 8];
            id.copy_from_slice(chunk);
            ix.order
                .push(u64::from_le_bytes(id))
                .ok_or_else(|| corrupt("more docs than u32 doc numbers"))?;
        }
        let docs = ix.order.len();

        ix.deleted = r.bitmap(docs)?;
        for (doc, &id) in ix.order.ids().iter().enumerate() {
            // `docs` came from a u32-checked push loop, so this cannot truncate.
            let doc = doc as u32;
            if !ix.deleted.contains(doc) && ix.live.insert(id, doc).is_some() {
                return Err(corrupt(format!("tweet {id} is live under two docs")));
            }
        }

        let tag_count = r.u64()?;
        for _ in 0..tag_count {
            let name_len = r.u32()? as usize;
            let name = std::str::from_utf8(r.take(name_len)?)
                .map_err(|_| corrupt("tag name is not UTF-8"))?
                .to_owned();
            let postings = r.bitmap(docs)?;
            if ix.tags.insert(name.clone(), postings).is_some() {
                return Err(corrupt("tag listed twice"));
            }
            ix.names.insert(name);
        }
        if !r.rest.is_empty() {
            return Err(corrupt("trailing bytes before footer"));
        }
        Ok(ix)
    }

    fn write_file(&self, tmp: &Path) -> Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)?;
        let mut buf = BufWriter::new(file);
        self.write_to(&mut buf)?;
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        // Data must be durable before the rename makes it visible.
        file.sync_all()?;
        Ok(())
    }
}

fn corrupt(why: impl Into<String>) -> Error {
    Error::Corrupt(why.into())
}

fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "index path has no file name")
    })?;
    let mut tmp = name.to_os_string();
    tmp.push(".tmp");
    Ok(path.with_file_name(tmp))
}

fn sync_parent_dir(path: &Path) -> Result<()> {
    // Without this the rename itself may not survive a power cut.
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn write_bitmap<W: Write>(w: &mut W, bitmap: &RoaringBitmap) -> io::Result<()> {
    w.write_all(&(bitmap.serialized_size() as u64).to_le_bytes())?;
    bitmap.serialize_into(w)
}

/// Tees every written byte into a running CRC so the footer needs no re-read.
struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bounds-checked cursor: every read either fits or yields `Corrupt`.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.rest.len() {
            return Err(corrupt("field runs past end of file"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads a length-prefixed bitmap whose members must all be `< docs`.
    fn bitmap(&mut self, docs: usize) -> Result<RoaringBitmap> {
        let len = usize::try_from(self.u64()?).map_err(|_| corrupt("bitmap length overflows"))?;
        let mut raw = self.take(len)?;
        // The checked decoder validates container structure, and a slice
        // reader bounds every allocation by the bytes actually present.
        let bitmap = RoaringBitmap::deserialize_from(&mut raw)
            .map_err(|e| corrupt(format!("bad roaring bitmap: {e}")))?;
        if !raw.is_empty() {
            return Err(corrupt("bitmap shorter than its declared length"));
        }
        if bitmap.max().is_some_and(|max| max as usize >= docs) {
            return Err(corrupt("bitmap names a doc that does not exist"));
        }
        Ok(bitmap)
    }
}
