//! The stored form of every value: a JSON object with a `version` field beside the value's
//! own fields (`{"version":1,"shards":64,...}`). Fields a later version adds are ignored by
//! this one; a value whose version is newer than [`VERSION`] is refused rather than misread.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The version this code writes and the newest it reads.
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct Out<'a, T> {
    version: u32,
    #[serde(flatten)]
    value: &'a T,
}

#[derive(Deserialize)]
struct In<T> {
    version: u32,
    #[serde(flatten)]
    value: T,
}

/// The stored bytes of `value`.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs of strings and integers into a Vec cannot fail.
    serde_json::to_vec(&Out {
        version: VERSION,
        value,
    })
    .unwrap_or_default()
}

/// The value stored at `key`.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    let corrupt = |reason: String| Error::Corrupt {
        key: key.to_string(),
        reason,
    };
    let read: In<T> = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if read.version == 0 || read.version > VERSION {
        return Err(corrupt(format!(
            "stored with version {}; this build reads versions 1 to {VERSION}",
            read.version
        )));
    }
    Ok(read.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterConfig;

    #[test]
    fn values_carry_their_version() {
        let bytes = encode(&ClusterConfig::default());
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["version"], 1);
        assert_eq!(json["shards"], 64);
        let back: ClusterConfig = decode("k", &bytes).expect("decodes");
        assert_eq!(back, ClusterConfig::default());
    }

    #[test]
    fn unknown_fields_are_ignored_and_newer_versions_refused() {
        let later = br#"{"version":1,"shards":8,"rf":2,"min_sync":1,"zone_aware":true}"#;
        let config: ClusterConfig = decode("k", later).expect("extra field ignored");
        assert_eq!(config.shards, 8);
        let newer = br#"{"version":2,"shards":8,"rf":2,"min_sync":1}"#;
        assert!(matches!(
            decode::<ClusterConfig>("k", newer),
            Err(Error::Corrupt { .. })
        ));
        let unversioned = br#"{"shards":8,"rf":2,"min_sync":1}"#;
        assert!(matches!(
            decode::<ClusterConfig>("k", unversioned),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<ClusterConfig>("k", b"not json"),
            Err(Error::Corrupt { .. })
        ));
    }
}
