//! Where each part of the map lives in the control plane's key space. Every key is under
//! `/chirp/<cluster>/`; nothing else builds one.
//!
//! | key | value | written by |
//! |---|---|---|
//! | `config` | [`ClusterConfig`](crate::ClusterConfig) | `chirpctl cluster create`, once |
//! | `members/<node>` | [`Member`](crate::Member) | the operator (`chirpctl node add`) |
//! | `nodes/<node>` | [`NodeInfo`](crate::NodeInfo), under the node's lease | the node itself |
//! | `shards/<id>` | [`ShardAssignment`](crate::ShardAssignment) | transactions comparing `mod_revision` |
//! | `controller` | [`ControllerInfo`](crate::map::ControllerInfo), under the holder's lease | the node that won the election |
//!
//! Shard ids are written as four zero-padded decimal digits (`shards/0007`; at most 1024
//! shards), so a prefix listing returns them in id order.

/// The key layout of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// What a key under the cluster's prefix names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// `config`.
    Config,
    /// `members/<node>`.
    Member(&'a str),
    /// `nodes/<node>`.
    Node(&'a str),
    /// `shards/<id>`.
    Shard(u32),
    /// `controller`.
    Controller,
    /// Anything else (a later version's key, or a malformed one): ignored by readers.
    Other,
}

impl Keys {
    /// The keys of cluster `cluster` (a name already checked by [`crate::check_name`]).
    pub fn new(cluster: &str) -> Keys {
        Keys {
            prefix: format!("/chirp/{cluster}/"),
        }
    }

    /// `/chirp/<cluster>/`: every key of the cluster starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The elected controller.
    pub fn controller(&self) -> String {
        format!("{}controller", self.prefix)
    }

    /// The cluster's config.
    pub fn config(&self) -> String {
        format!("{}config", self.prefix)
    }

    /// The prefix of every member.
    pub fn members(&self) -> String {
        format!("{}members/", self.prefix)
    }

    /// One member.
    pub fn member(&self, node: &str) -> String {
        format!("{}members/{node}", self.prefix)
    }

    /// The prefix of every live node's registration.
    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }

    /// One node's registration.
    pub fn node(&self, node: &str) -> String {
        format!("{}nodes/{node}", self.prefix)
    }

    /// The prefix of every shard assignment.
    pub fn shards(&self) -> String {
        format!("{}shards/", self.prefix)
    }

    /// One shard's assignment.
    pub fn shard(&self, id: u32) -> String {
        format!("{}shards/{id:04}", self.prefix)
    }

    /// What `key` names, or [`Key::Other`].
    pub fn parse<'a>(&self, key: &'a str) -> Key<'a> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return Key::Other;
        };
        if rest == "config" {
            return Key::Config;
        }
        if rest == "controller" {
            return Key::Controller;
        }
        if let Some(node) = rest.strip_prefix("members/") {
            return if crate::check_name("node", node).is_ok() {
                Key::Member(node)
            } else {
                Key::Other
            };
        }
        if let Some(node) = rest.strip_prefix("nodes/") {
            return if crate::check_name("node", node).is_ok() {
                Key::Node(node)
            } else {
                Key::Other
            };
        }
        if let Some(id) = rest.strip_prefix("shards/") {
            if id.len() == 4 && id.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(id) = id.parse() {
                    return Key::Shard(id);
                }
            }
        }
        Key::Other
    }
}

/// The end of the range holding every key that starts with `prefix` (etcd's `range_end`).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let k = Keys::new("prod");
        assert_eq!(k.config(), "/chirp/prod/config");
        assert_eq!(k.parse(&k.config()), Key::Config);
        assert_eq!(k.parse(&k.controller()), Key::Controller);
        assert_eq!(k.parse(&k.member("n1")), Key::Member("n1"));
        assert_eq!(k.parse(&k.node("n-2")), Key::Node("n-2"));
        assert_eq!(k.shard(7), "/chirp/prod/shards/0007");
        for id in [0, 7, 63, 1023] {
            assert_eq!(k.parse(&k.shard(id)), Key::Shard(id));
        }
        assert!(k.member("n1").starts_with(&k.members()));
        assert!(k.node("n1").starts_with(&k.nodes()));
        assert!(k.shard(1).starts_with(&k.shards()));
    }

    #[test]
    fn foreign_and_malformed_keys_are_other() {
        let k = Keys::new("prod");
        for key in [
            "/chirp/prod2/config",
            "/chirp/other/shards/0001",
            "/chirp/prod/shards/1",
            "/chirp/prod/shards/00x1",
            "/chirp/prod/members/a/b",
            "/chirp/prod/moves/0001",
        ] {
            assert_eq!(k.parse(key), Key::Other, "{key}");
        }
    }

    #[test]
    fn shard_keys_sort_in_id_order() {
        let k = Keys::new("c");
        let mut keys: Vec<String> = (0..1024).rev().map(|id| k.shard(id)).collect();
        keys.sort();
        let ids: Vec<Key> = keys.iter().map(|key| k.parse(key)).collect();
        assert_eq!(ids, (0..1024).map(Key::Shard).collect::<Vec<_>>());
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end("/chirp/c/"), b"/chirp/c0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
