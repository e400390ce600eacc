//! Sorted-run writers: one SST file sink per (column family, shard), rotated by size, whose
//! files are ingested into the shard when the import finishes.

use std::path::{Path, PathBuf};

use rocksdb::{Options, SstFileWriter};

use crate::error::{Error, Result};
use crate::node::Inner;

/// Entries per SST file: files of tens of MiB keep later compactions of these levels small.
const ENTRIES_PER_FILE: u64 = 2_000_000;

/// Writes one column family of one shard as a run of SST files. Keys must come in strictly
/// ascending order (RocksDB's SstFileWriter refuses anything else).
pub(super) struct Sink<'a> {
    opts: &'a Options,
    dir: PathBuf,
    writer: Option<SstFileWriter<'a>>,
    in_file: u64,
    pub(super) files: Vec<PathBuf>,
    pub(super) entries: u64,
}

impl<'a> Sink<'a> {
    fn new(opts: &'a Options, dir: PathBuf) -> Sink<'a> {
        Sink {
            opts,
            dir,
            writer: None,
            in_file: 0,
            files: Vec::new(),
            entries: 0,
        }
    }

    fn writer(&mut self) -> Result<&mut SstFileWriter<'a>> {
        if self.in_file >= ENTRIES_PER_FILE {
            self.close_file()?;
        }
        if self.writer.is_none() {
            let path = self.dir.join(format!("{:06}.sst", self.files.len()));
            let writer = SstFileWriter::create(self.opts);
            writer.open(&path)?;
            self.files.push(path);
            self.writer = Some(writer);
        }
        self.writer
            .as_mut()
            .ok_or_else(|| Error::Storage("SST writer missing".into()))
    }

    /// Adds a row.
    pub(super) fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.writer()?.put(key, value)?;
        self.in_file += 1;
        self.entries += 1;
        Ok(())
    }

    /// Adds a merge operand (counters: added to whatever the shard already holds).
    pub(super) fn merge(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.writer()?.merge(key, value)?;
        self.in_file += 1;
        self.entries += 1;
        Ok(())
    }

    fn close_file(&mut self) -> Result<()> {
        if let Some(mut writer) = self.writer.take() {
            writer.finish()?;
        }
        self.in_file = 0;
        Ok(())
    }

    /// Closes the current file; returns every file written.
    pub(super) fn finish(mut self) -> Result<(Vec<PathBuf>, u64)> {
        self.close_file()?;
        Ok((std::mem::take(&mut self.files), self.entries))
    }
}

/// The per-shard column-family options a family of sinks borrows.
pub(super) struct CfOptions {
    cf: &'static str,
    per_shard: Vec<Options>,
}

impl CfOptions {
    /// The options every shard of `inner` opens `cf` with (an import needs every shard held).
    pub(super) fn new(inner: &Inner, cf: &'static str) -> CfOptions {
        CfOptions {
            cf,
            per_shard: inner.placement.local().map(|s| s.cf_options(cf)).collect(),
        }
    }
}

/// One sink per shard for a column family.
pub(super) struct CfSinks<'a> {
    pub(super) cf: &'static str,
    pub(super) shards: Vec<Sink<'a>>,
}

impl<'a> CfSinks<'a> {
    /// Sinks writing under `root/<cf>/<shard>/`.
    pub(super) fn new(opts: &'a CfOptions, root: &Path) -> Result<CfSinks<'a>> {
        let mut shards = Vec::with_capacity(opts.per_shard.len());
        for (i, o) in opts.per_shard.iter().enumerate() {
            let dir = root.join(opts.cf).join(format!("{i:03}"));
            std::fs::create_dir_all(&dir)?;
            shards.push(Sink::new(o, dir));
        }
        Ok(CfSinks {
            cf: opts.cf,
            shards,
        })
    }

    /// The sink of shard `i`.
    pub(super) fn shard(&mut self, i: usize) -> &mut Sink<'a> {
        &mut self.shards[i]
    }

    /// Closes every file; returns (column family, per-shard files, rows).
    pub(super) fn finish(self) -> Result<Built> {
        let mut files = Vec::with_capacity(self.shards.len());
        let mut rows = 0;
        for sink in self.shards {
            let (f, n) = sink.finish()?;
            files.push(f);
            rows += n;
        }
        Ok(Built {
            cf: self.cf,
            files,
            rows,
        })
    }
}

/// The finished files of one column family, per shard.
pub(super) struct Built {
    pub(super) cf: &'static str,
    pub(super) files: Vec<Vec<PathBuf>>,
    pub(super) rows: u64,
}
