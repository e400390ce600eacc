//! The power cut itself: which inodes and bytes survive, and which may still come back.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Body, Dir, FileData, Model, Node, ROOT};
use crate::powercut::DirDurability;

impl Model {
    /// What a power cut now would leave: only fsynced file data, and the directory entries
    /// that [`DirDurability`] makes durable. Unreachable inodes are dropped and link counts
    /// recomputed, as a filesystem check would.
    pub fn durable(&self) -> Model {
        let mut nodes = HashMap::new();
        let mut seen = HashSet::from([ROOT]);
        let mut queue = vec![ROOT];
        while let Some(ino) = queue.pop() {
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            let body = match &node.body {
                Body::File(f) => Body::File(FileData::clean(f.synced.clone())),
                Body::Dir(d) => {
                    let source = match self.dirs {
                        DirDurability::Immediate => &d.entries,
                        DirDurability::OnFsync => &d.synced,
                    };
                    let mut entries = BTreeMap::new();
                    for (name, &child) in source {
                        let Some(c) = self.nodes.get(&child) else {
                            continue;
                        };
                        let is_dir = matches!(c.body, Body::Dir(_));
                        if !seen.insert(child) {
                            // A second name for a directory (a rename whose old entry was
                            // synced too) is dropped; a second name for a file is a hard link.
                            if !is_dir {
                                entries.insert(name.clone(), child);
                            }
                            continue;
                        }
                        entries.insert(name.clone(), child);
                        queue.push(child);
                    }
                    Body::Dir(Dir {
                        synced: entries.clone(),
                        entries,
                        parent: d.parent,
                    })
                }
            };
            let copy = Node {
                body,
                nlink: 0,
                open: 0,
                ..Node::new(
                    Body::File(FileData::default()),
                    node.perm,
                    node.uid,
                    node.gid,
                )
            };
            nodes.insert(ino, copy);
        }
        let mut links: HashMap<u64, u32> = HashMap::new();
        for node in nodes.values_mut() {
            if let Body::Dir(d) = &mut node.body {
                for &child in d.entries.values() {
                    *links.entry(child).or_default() += 1;
                }
            }
        }
        // Parent pointers follow the entry that survived.
        let mut parents = Vec::new();
        for (&ino, node) in &nodes {
            if let Body::Dir(d) = &node.body {
                parents.extend(d.entries.values().map(|&child| (child, ino)));
            }
        }
        for (child, parent) in parents {
            if let Some(Node {
                body: Body::Dir(d), ..
            }) = nodes.get_mut(&child)
            {
                d.parent = parent;
            }
        }
        for (ino, node) in &mut nodes {
            node.nlink = if *ino == ROOT {
                1
            } else {
                links.get(ino).copied().unwrap_or(0)
            };
        }
        Model {
            nodes,
            next_ino: self.next_ino,
            dirs: self.dirs,
            fsyncs: 0,
            dead: false,
        }
    }

    /// Drops inodes that neither a live nor a synced entry nor an open handle reaches.
    pub(super) fn collect(&mut self) {
        let mut seen = HashSet::from([ROOT]);
        let mut queue: Vec<u64> = vec![ROOT];
        queue.extend(
            self.nodes
                .iter()
                .filter(|(_, n)| n.open > 0)
                .map(|(&i, _)| i),
        );
        seen.extend(queue.iter().copied());
        while let Some(ino) = queue.pop() {
            if let Some(Node {
                body: Body::Dir(d), ..
            }) = self.nodes.get(&ino)
            {
                for &child in d.entries.values().chain(d.synced.values()) {
                    if seen.insert(child) {
                        queue.push(child);
                    }
                }
            }
        }
        self.nodes.retain(|ino, _| seen.contains(ino));
    }
}
