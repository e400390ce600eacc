//! The filesystem state behind [`super::PowerCutFs`], with no FUSE in it: operations take inode
//! numbers and names and fail with an errno, so the durability rules are unit-tested without a
//! mount (`model_tests.rs`).

mod cut;
mod file;

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use super::DirDurability;
use file::FileData;

/// An errno value (`libc::ENOENT`, ...).
pub(crate) type Errno = i32;
/// The result of one operation.
pub(crate) type Res<T> = Result<T, Errno>;

/// The root directory's inode number (FUSE's fixed `FUSE_ROOT_ID`).
pub(crate) const ROOT: u64 = 1;

/// `fallocate` mode bit: reserve space without changing the file size.
const FALLOC_FL_KEEP_SIZE: i32 = 1;

/// What an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// What `stat` reports about an inode.
#[derive(Clone, Debug)]
pub(crate) struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

/// Attribute changes of one `setattr`; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub(crate) struct SetAttr {
    pub perm: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

/// A directory's entries, live and as of its last fsync.
#[derive(Clone, Debug)]
struct Dir {
    entries: BTreeMap<OsString, u64>,
    /// Only read under [`DirDurability::OnFsync`].
    synced: BTreeMap<OsString, u64>,
    parent: u64,
}

#[derive(Clone, Debug)]
enum Body {
    File(FileData),
    Dir(Dir),
}

#[derive(Clone, Debug)]
struct Node {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Live directory entries naming this inode.
    nlink: u32,
    /// Open file handles: an unlinked file lives on while one is open.
    open: u32,
}

impl Node {
    fn new(body: Body, perm: u16, uid: u32, gid: u32) -> Node {
        let now = SystemTime::now();
        Node {
            body,
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
            nlink: 1,
            open: 0,
        }
    }
}

/// The whole filesystem: live state plus what survives a power cut.
#[derive(Debug)]
pub(crate) struct Model {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    dirs: DirDurability,
    /// Counts of fsync and fsyncdir calls, for reports.
    pub fsyncs: u64,
    /// Set by a power cut: every operation fails with `EIO` from then on.
    pub dead: bool,
}

impl Model {
    /// An empty filesystem: a root directory owned by `uid`/`gid`.
    pub fn new(dirs: DirDurability, uid: u32, gid: u32) -> Model {
        let root = Dir {
            entries: BTreeMap::new(),
            synced: BTreeMap::new(),
            parent: ROOT,
        };
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node::new(Body::Dir(root), 0o755, uid, gid));
        Model {
            nodes,
            next_ino: ROOT + 1,
            dirs,
            fsyncs: 0,
            dead: false,
        }
    }

    /// The state after a power cut: nothing, and every operation fails.
    pub fn dead(dirs: DirDurability) -> Model {
        let mut model = Model::new(dirs, 0, 0);
        model.dead = true;
        model
    }

    /// How directory entries become durable in this filesystem.
    pub fn dir_durability(&self) -> DirDurability {
        self.dirs
    }

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: u64) -> Res<&Dir> {
        match &self.node(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Res<&mut Dir> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Res<&mut FileData> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(libc::EISDIR),
        }
    }

    /// The attributes of an inode.
    pub fn attr(&self, ino: u64) -> Res<Attr> {
        let node = self.node(ino)?;
        let (kind, size, nlink) = match &node.body {
            Body::File(f) => (Kind::File, f.data.len() as u64, node.nlink),
            Body::Dir(d) => (Kind::Dir, d.entries.len() as u64, 2),
        };
        Ok(Attr {
            ino,
            kind,
            size,
            perm: node.perm,
            nlink,
            uid: node.uid,
            gid: node.gid,
            atime: node.atime,
            mtime: node.mtime,
            ctime: node.ctime,
        })
    }

    /// The inode `name` in `parent` names.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Res<Attr> {
        let ino = *self.dir(parent)?.entries.get(name).ok_or(libc::ENOENT)?;
        self.attr(ino)
    }

    fn add_entry(
        &mut self,
        parent: u64,
        name: &OsStr,
        body: Body,
        perm: u16,
        ids: (u32, u32),
    ) -> Res<u64> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node::new(body, perm, ids.0, ids.1));
        self.dir_mut(parent)?
            .entries
            .insert(name.to_os_string(), ino);
        self.touch(parent);
        Ok(ino)
    }

    fn touch(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            node.mtime = now;
            node.ctime = now;
        }
    }

    /// Creates and opens an empty file (the caller releases it).
    pub fn create(&mut self, parent: u64, name: &OsStr, perm: u16, ids: (u32, u32)) -> Res<Attr> {
        let ino = self.add_entry(parent, name, Body::File(FileData::default()), perm, ids)?;
        self.node_mut(ino)?.open = 1;
        self.attr(ino)
    }

    /// Creates an empty directory.
    pub fn mkdir(&mut self, parent: u64, name: &OsStr, perm: u16, ids: (u32, u32)) -> Res<Attr> {
        let dir = Dir {
            entries: BTreeMap::new(),
            synced: BTreeMap::new(),
            parent,
        };
        let ino = self.add_entry(parent, name, Body::Dir(dir), perm, ids)?;
        self.attr(ino)
    }

    /// Removes a file's name.
    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        let ino = *self.dir(parent)?.entries.get(name).ok_or(libc::ENOENT)?;
        if matches!(self.node(ino)?.body, Body::Dir(_)) {
            return Err(libc::EISDIR);
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.touch(parent);
        self.unlinked(ino);
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        let ino = *self.dir(parent)?.entries.get(name).ok_or(libc::ENOENT)?;
        if !self.dir(ino)?.entries.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.touch(parent);
        self.unlinked(ino);
        Ok(())
    }

    /// Moves `parent/name` to `newparent/newname`, atomically replacing a target (unless
    /// `noreplace`, then `EEXIST`).
    pub fn rename(
        &mut self,
        (parent, name): (u64, &OsStr),
        (newparent, newname): (u64, &OsStr),
        noreplace: bool,
    ) -> Res<()> {
        let ino = *self.dir(parent)?.entries.get(name).ok_or(libc::ENOENT)?;
        let target = self.dir(newparent)?.entries.get(newname).copied();
        let moving_dir = matches!(self.node(ino)?.body, Body::Dir(_));
        if moving_dir {
            // A directory may not move into itself or below itself.
            let mut at = newparent;
            loop {
                if at == ino {
                    return Err(libc::EINVAL);
                }
                if at == ROOT {
                    break;
                }
                at = self.dir(at)?.parent;
            }
        }
        if let Some(old) = target {
            if noreplace {
                return Err(libc::EEXIST);
            }
            if old == ino {
                // Two names of one file: POSIX says do nothing.
                return Ok(());
            }
            match (&self.node(old)?.body, moving_dir) {
                (Body::Dir(d), true) if !d.entries.is_empty() => return Err(libc::ENOTEMPTY),
                (Body::Dir(_), false) => return Err(libc::EISDIR),
                (Body::File(_), true) => return Err(libc::ENOTDIR),
                _ => {}
            }
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.dir_mut(newparent)?
            .entries
            .insert(newname.to_os_string(), ino);
        if let Body::Dir(d) = &mut self.node_mut(ino)?.body {
            d.parent = newparent;
        }
        self.touch(parent);
        self.touch(newparent);
        if let Some(old) = target {
            self.unlinked(old);
        }
        Ok(())
    }

    /// Gives file `ino` another name.
    pub fn link(&mut self, ino: u64, newparent: u64, newname: &OsStr) -> Res<Attr> {
        if matches!(self.node(ino)?.body, Body::Dir(_)) {
            return Err(libc::EPERM);
        }
        if self.dir(newparent)?.entries.contains_key(newname) {
            return Err(libc::EEXIST);
        }
        self.dir_mut(newparent)?
            .entries
            .insert(newname.to_os_string(), ino);
        self.node_mut(ino)?.nlink += 1;
        self.touch(newparent);
        self.attr(ino)
    }

    fn unlinked(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlink = node.nlink.saturating_sub(1);
        }
        self.maybe_free(ino);
    }

    fn maybe_free(&mut self, ino: u64) {
        let Some(node) = self.nodes.get(&ino) else {
            return;
        };
        if node.nlink > 0 || node.open > 0 {
            return;
        }
        match self.dirs {
            DirDurability::Immediate => {
                self.nodes.remove(&ino);
            }
            // A synced entry elsewhere may still bring it back at a cut.
            DirDurability::OnFsync => self.collect(),
        }
    }

    /// Opens a file (one more handle).
    pub fn open(&mut self, ino: u64) -> Res<()> {
        self.node_mut(ino)?.open += 1;
        Ok(())
    }

    /// Closes a handle.
    pub fn release(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open = node.open.saturating_sub(1);
        }
        self.maybe_free(ino);
    }

    /// Up to `size` bytes from `offset`.
    pub fn read(&mut self, ino: u64, offset: u64, size: u32) -> Res<&[u8]> {
        let f = self.file_mut(ino)?;
        let len = f.data.len();
        let start = usize::try_from(offset).map_or(len, |o| o.min(len));
        let end = start.saturating_add(size as usize).min(len);
        Ok(&f.data[start..end])
    }

    /// Writes `bytes` at `offset` (zero-filling a gap); durable only after [`Model::fsync`].
    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Res<u32> {
        let offset = usize::try_from(offset).map_err(|_| libc::EFBIG)?;
        let written = u32::try_from(bytes.len()).map_err(|_| libc::EINVAL)?;
        self.file_mut(ino)?.write(offset, bytes);
        self.touch(ino);
        Ok(written)
    }

    /// Changes attributes; a new size is file data, durable only after [`Model::fsync`].
    pub fn setattr(&mut self, ino: u64, set: &SetAttr) -> Res<Attr> {
        if let Some(size) = set.size {
            let size = usize::try_from(size).map_err(|_| libc::EFBIG)?;
            self.file_mut(ino)?.resize(size);
            self.touch(ino);
        }
        let node = self.node_mut(ino)?;
        if let Some(perm) = set.perm {
            node.perm = perm;
        }
        if let Some(uid) = set.uid {
            node.uid = uid;
        }
        if let Some(gid) = set.gid {
            node.gid = gid;
        }
        if let Some(t) = set.atime {
            node.atime = t;
        }
        if let Some(t) = set.mtime {
            node.mtime = t;
        }
        self.attr(ino)
    }

    /// Reserves space: `FALLOC_FL_KEEP_SIZE` is a no-op here, mode 0 extends the file.
    pub fn fallocate(&mut self, ino: u64, offset: u64, len: u64, mode: i32) -> Res<()> {
        let f = self.file_mut(ino)?;
        match mode {
            FALLOC_FL_KEEP_SIZE => Ok(()),
            0 => {
                let end = offset.checked_add(len).ok_or(libc::EFBIG)?;
                let end = usize::try_from(end).map_err(|_| libc::EFBIG)?;
                if end > f.data.len() {
                    f.resize(end);
                }
                Ok(())
            }
            _ => Err(libc::EOPNOTSUPP),
        }
    }

    /// Makes a file's data (bytes and length) durable; on a directory, same as
    /// [`Model::fsyncdir`].
    pub fn fsync(&mut self, ino: u64) -> Res<()> {
        self.fsyncs += 1;
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => f.sync(),
            Body::Dir(d) => {
                d.synced = d.entries.clone();
                if self.dirs == DirDurability::OnFsync {
                    // Unlinked inodes the old synced entries still named can go now.
                    self.collect();
                }
            }
        }
        Ok(())
    }

    /// Makes a directory's entries durable (all that [`DirDurability::OnFsync`] keeps).
    pub fn fsyncdir(&mut self, ino: u64) -> Res<()> {
        self.fsync(ino)
    }

    /// The entries of a directory, with `.` and `..` first.
    pub fn readdir(&self, ino: u64) -> Res<Vec<(u64, Kind, OsString)>> {
        let d = self.dir(ino)?;
        let mut out = vec![
            (ino, Kind::Dir, OsString::from(".")),
            (d.parent, Kind::Dir, OsString::from("..")),
        ];
        for (name, &child) in &d.entries {
            let kind = match self.node(child)?.body {
                Body::File(_) => Kind::File,
                Body::Dir(_) => Kind::Dir,
            };
            out.push((child, kind, name.clone()));
        }
        Ok(out)
    }

    /// Inode count and bytes held (live data), for `statfs`.
    pub fn usage(&self) -> (u64, u64) {
        let bytes = self
            .nodes
            .values()
            .map(|n| match &n.body {
                Body::File(f) => f.data.len() as u64,
                Body::Dir(_) => 0,
            })
            .sum();
        (self.nodes.len() as u64, bytes)
    }

    /// Follows `path` (relative, `/`-separated) from the root.
    pub fn resolve(&self, path: &str) -> Res<u64> {
        let mut ino = ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = self.lookup(ino, OsStr::new(part))?.ino;
        }
        Ok(ino)
    }

    /// A whole file's live bytes, by path.
    pub fn contents(&self, path: &str) -> Res<Vec<u8>> {
        match &self.node(self.resolve(path)?)?.body {
            Body::File(f) => Ok(f.data.clone()),
            Body::Dir(_) => Err(libc::EISDIR),
        }
    }
}
