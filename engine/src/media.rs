//! Media: image uploads, their metadata rows, and attaching them to tweets.
//!
//! The bytes live in the [`crate::blobs`] store; the `media` column family holds a
//! [`MediaDoc`] per upload, on the uploader's shard (the media id names it, as a tweet id
//! does). A tweet that shows an image writes a `media_refs` (media id, tweet id) row in the
//! same batch as the tweet and deletes it with the tweet, so media that no tweet shows can be
//! found later by a prefix scan and removed after a grace period.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Map;

use crate::batch::{Batch, Entry, OpKind};
use crate::blobs::{Blob, BlobStore};
use crate::doc::{self, MediaDoc, MediaRef};
use crate::error::{Error, Result};
use crate::ids::now_unix_ms;
use crate::imaging::{self, MediaType};
use crate::keys::{self, CF_MEDIA, CF_MEDIA_REFS};
use crate::node::Inner;
use crate::slots::Slots;
use crate::tweets::MAX_MEDIA;

/// Default largest upload, in bytes (5 MiB).
pub const DEFAULT_MAX_MEDIA_BYTES: usize = 5 << 20;

/// The path an image is served at.
pub fn media_url(id: u64) -> String {
    format!("/media/{id}")
}

fn media_ref(m: &MediaDoc) -> MediaRef {
    MediaRef {
        id: m.id.to_string(),
        url: media_url(m.id),
        content_type: m.content_type.clone(),
        width: m.width,
        height: m.height,
        description: m.description.clone(),
    }
}

/// Longest image description, in characters (Mastodon's limit).
pub const MAX_DESCRIPTION: usize = 1500;

/// The media service: the image files (a content-addressed blob store) and the bounded
/// decoders that validate uploads. The rows describing uploads live on the uploaders' shards.
pub struct Media {
    blobs: BlobStore,
    /// One decode per core: decoding is CPU-bound and may hold a large buffer.
    decoders: Slots,
    max_bytes: usize,
}

/// An upload that passed validation, its cleaned bytes stored.
pub(crate) struct Stored {
    media_type: MediaType,
    width: u32,
    height: u32,
    bytes: u64,
    sha256: String,
}

impl Media {
    /// The service over a data dir's `media/` directory.
    pub(crate) fn open(data_dir: &Path, max_bytes: usize) -> Result<Self> {
        Ok(Media {
            blobs: BlobStore::open(&data_dir.join("media"))?,
            decoders: Slots::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            max_bytes,
        })
    }

    /// Validates an image by decoding it as `content_type`, strips its metadata and stores
    /// the clean bytes durably.
    pub(crate) fn store(&self, content_type: &str, bytes: &[u8]) -> Result<Stored> {
        let media_type = MediaType::from_mime(content_type)?;
        if bytes.len() > self.max_bytes {
            return Err(Error::TooLarge(self.max_bytes));
        }
        let clean = {
            let _slot = self.decoders.acquire();
            imaging::sanitize(media_type, bytes)?
        };
        Ok(Stored {
            media_type,
            width: clean.width,
            height: clean.height,
            bytes: clean.bytes.len() as u64,
            sha256: self.blobs.put(&clean.bytes)?,
        })
    }

    /// The stored bytes of an upload. `primary`: this copy is the primary of the upload's
    /// shard, which stored the file before the row (or, promoted, fetched it before applying
    /// the row), so a missing file is damage. A replica fetches the file before it applies
    /// the row too, unless its primary lacked it: there it is "not found" (404).
    pub(crate) fn blob(&self, media: &MediaDoc, primary: bool) -> Result<Blob> {
        match self.file(&media.sha256) {
            Err(Error::NotFound(_)) if primary => {
                Err(Error::Corrupt(format!("blob {} is missing", media.sha256)))
            }
            Err(Error::NotFound(_)) => {
                tracing::warn!(media = media.id, sha = %media.sha256, "image file not on this replica");
                Err(Error::NotFound("image file on this replica"))
            }
            other => other,
        }
    }

    /// The digests of every blob file (one per distinct image).
    pub(crate) fn digests(&self) -> Result<Vec<String>> {
        self.blobs.list()
    }

    /// Whether the file with this digest is here.
    pub(crate) fn has(&self, sha256: &str) -> bool {
        self.blobs.contains(sha256)
    }

    /// The file with this digest: NotFound if it is not here.
    pub(crate) fn file(&self, sha256: &str) -> Result<Blob> {
        match self.blobs.get(sha256) {
            Err(Error::Corrupt(_)) if !self.blobs.contains(sha256) => {
                Err(Error::NotFound("image file"))
            }
            other => other,
        }
    }

    /// Stores a file another copy sent, durably, if its bytes are the ones `sha256` names.
    pub(crate) fn receive(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        let got = crate::blobs::sha256_hex(bytes);
        if got != sha256 {
            return Err(Error::Corrupt(format!(
                "image file {sha256} arrived with the bytes of {got}"
            )));
        }
        self.blobs.put(bytes)?;
        Ok(())
    }
}

impl Inner {
    /// Validates and stores an image and records it as `owner`'s. Acknowledged once both the
    /// blob and its row are durable.
    pub fn upload_media(&self, owner: u64, content_type: &str, bytes: &[u8]) -> Result<MediaDoc> {
        let stored = self.media.store(content_type, bytes)?;
        let shard = self.user_shard(owner)?;
        let id = self.placement.mint_media(shard.index())?;
        let media = MediaDoc {
            id,
            owner_id: owner,
            content_type: stored.media_type.mime().to_string(),
            width: stored.width,
            height: stored.height,
            bytes: stored.bytes,
            sha256: stored.sha256,
            created_at_ms: now_unix_ms(),
            description: None,
            rest: Map::new(),
        };
        let mut batch = Batch::new();
        batch.put(CF_MEDIA, keys::id_key(id), doc::encode(&media)?);
        shard.write(batch)?;
        Ok(media)
    }

    /// Sets (or, with None or an empty text, clears) the description of one of `owner`'s
    /// uploads. Tweets that already attach it keep the description they were posted with.
    pub fn describe_media(
        &self,
        owner: u64,
        id: u64,
        description: Option<String>,
    ) -> Result<MediaDoc> {
        let description = description.filter(|d| !d.trim().is_empty());
        if let Some(d) = &description {
            if d.chars().count() > MAX_DESCRIPTION || d.chars().any(|c| c.is_control() && c != '\n')
            {
                return Err(Error::invalid(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION} characters, without control characters but line breaks"),
                ));
            }
        }
        let _guard = self.lock_user(owner);
        let mut media = self.media(id)?;
        if media.owner_id != owner {
            return Err(Error::NotFound("media"));
        }
        media.description = description;
        let shard = self.user_shard(owner)?;
        let mut batch = Batch::new();
        batch.put(CF_MEDIA, keys::id_key(id), doc::encode(&media)?);
        shard.write(batch)?;
        Ok(media)
    }

    /// One media row.
    pub fn media(&self, id: u64) -> Result<MediaDoc> {
        let shard = self.placement.by_id(id)?.ok_or(Error::NotFound("media"))?;
        match shard.get(CF_MEDIA, &keys::id_key(id))? {
            Some(bytes) => Ok(doc::decode(&bytes)?),
            None => Err(Error::NotFound("media")),
        }
    }

    /// The stored bytes of an upload (see [`Media::blob`]).
    pub fn media_blob(&self, media: &MediaDoc) -> Result<Blob> {
        let primary = self.is_primary_of(self.placement.of_user(media.owner_id));
        self.media.blob(media, primary)
    }

    /// The digests of every blob file (one per distinct image).
    pub fn blob_digests(&self) -> Result<Vec<String>> {
        self.media.digests()
    }

    /// The image files named by the media rows that shipped oplog entries write, which this
    /// node does not have: a copy fetches them before it applies the entries, so a copy that
    /// acknowledges an upload holds its file.
    pub fn blobs_missing_for(&self, raws: &[Vec<u8>]) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        for raw in raws {
            for op in Entry::decode(raw)?.ops {
                if op.cf_name() == CF_MEDIA && op.kind == OpKind::Put {
                    let m: MediaDoc = doc::decode(&op.value)?;
                    if !self.media.has(&m.sha256) {
                        out.insert(m.sha256);
                    }
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The image files named by a shard's media rows that this node does not have (after a
    /// copy of the shard was installed from a checkpoint).
    pub fn blobs_missing(&self, shard: usize) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        self.placement
            .shard(shard)?
            .for_each(CF_MEDIA, |_, value| {
                let m: MediaDoc = doc::decode(value)?;
                if !self.media.has(&m.sha256) {
                    out.insert(m.sha256);
                }
                Ok(())
            })?;
        Ok(out.into_iter().collect())
    }

    /// An image file by its digest (to send to another copy); NotFound if it is not here.
    pub fn blob_file(&self, sha256: &str) -> Result<Blob> {
        self.media.file(sha256)
    }

    /// Stores an image file received from another copy, durably, refusing bytes that are
    /// not the file `sha256` names.
    pub fn receive_blob(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.media.receive(sha256, bytes)
    }

    /// Ids of the tweets that show an image, oldest first (empty: a candidate for removal).
    pub fn media_references(&self, id: u64) -> Result<Vec<u64>> {
        let media = self.media(id)?;
        let shard = self.user_shard(media.owner_id)?;
        let rows = shard.scan_pairs(CF_MEDIA_REFS, id, None, usize::MAX)?;
        Ok(rows.into_iter().map(|(tweet, _)| tweet).collect())
    }

    /// Checks the media ids of a new tweet: at most [`MAX_MEDIA`], distinct, each uploaded
    /// by `author`. Returns the links the tweet stores.
    pub(crate) fn attachable_media(&self, author: u64, ids: &[String]) -> Result<Vec<MediaRef>> {
        if ids.len() > MAX_MEDIA {
            return Err(Error::invalid(
                "media",
                format!("at most {MAX_MEDIA} images per tweet"),
            ));
        }
        let mut out: Vec<MediaRef> = Vec::with_capacity(ids.len());
        for raw in ids {
            let unknown = || Error::invalid("media", format!("unknown media id {raw:?}"));
            let id: u64 = raw.parse().map_err(|_| unknown())?;
            let media = match self.media(id) {
                Ok(m) => m,
                Err(Error::NotFound(_)) => return Err(unknown()),
                Err(e) => return Err(e),
            };
            if media.owner_id != author {
                return Err(Error::invalid(
                    "media",
                    format!("media {raw} was uploaded by another user"),
                ));
            }
            if out.iter().any(|m| m.id == media.id.to_string()) {
                return Err(Error::invalid(
                    "media",
                    format!("media {raw} is listed twice"),
                ));
            }
            out.push(media_ref(&media));
        }
        Ok(out)
    }
}

/// Adds to `batch` (on the author's shard) the reference rows of a tweet's images: written
/// with the tweet (`keep`) or removed with it.
pub(crate) fn reference_media(batch: &mut Batch, tweet_id: u64, media: &[MediaRef], keep: bool) {
    for m in media {
        // Stored links were validated when posted; one that does not parse has no row.
        let Ok(media_id) = m.id.parse::<u64>() else {
            continue;
        };
        let key = keys::pair_key(media_id, tweet_id);
        if keep {
            batch.put(CF_MEDIA_REFS, key, []);
        } else {
            batch.delete(CF_MEDIA_REFS, key);
        }
    }
}
