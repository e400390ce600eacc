//! Media: image uploads, their metadata rows, and attaching them to tweets.
//!
//! The bytes live in the [`crate::blobs`] store; the `media` column family holds a
//! [`MediaDoc`] per upload, on the uploader's shard (the media id names it, as a tweet id
//! does). A tweet that shows an image writes a `media_refs` (media id, tweet id) row in the
//! same batch as the tweet and deletes it with the tweet, so media that no tweet shows can be
//! found later by a prefix scan and removed after a grace period.

use serde_json::Map;

use crate::batch::Batch;
use crate::blobs::Blob;
use crate::doc::{self, MediaDoc, MediaRef};
use crate::error::{Error, Result};
use crate::ids::{self, now_unix_ms};
use crate::imaging::{self, MediaType};
use crate::keys::{self, CF_MEDIA, CF_MEDIA_REFS};
use crate::node::Inner;
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
    }
}

impl Inner {
    /// Validates an image by decoding it as `content_type`, strips its metadata, stores it
    /// and records it as `owner`'s. Acknowledged once both the blob and its row are durable.
    pub fn upload_media(&self, owner: u64, content_type: &str, bytes: &[u8]) -> Result<MediaDoc> {
        let media_type = MediaType::from_mime(content_type)?;
        if bytes.len() > self.config.max_media_bytes {
            return Err(Error::TooLarge(self.config.max_media_bytes));
        }
        let clean = {
            let _slot = self.decode_slots.acquire();
            imaging::sanitize(media_type, bytes)?
        };
        let sha256 = self.blobs.put(&clean.bytes)?;
        let shard = self.user_shard(owner);
        let id = self.media_ids[shard.index()].next_id();
        let media = MediaDoc {
            id,
            owner_id: owner,
            content_type: media_type.mime().to_string(),
            width: clean.width,
            height: clean.height,
            bytes: clean.bytes.len() as u64,
            sha256,
            created_at_ms: now_unix_ms(),
            rest: Map::new(),
        };
        let mut batch = Batch::new();
        batch.put(CF_MEDIA, keys::id_key(id), doc::encode(&media)?);
        shard.write(batch)?;
        Ok(media)
    }

    /// One media row.
    pub fn media(&self, id: u64) -> Result<MediaDoc> {
        let shard = self
            .shards
            .get(ids::shard_of_id(id))
            .ok_or(Error::NotFound("media"))?;
        match shard.get(CF_MEDIA, &keys::id_key(id))? {
            Some(bytes) => Ok(doc::decode(&bytes)?),
            None => Err(Error::NotFound("media")),
        }
    }

    /// The stored bytes of a media row. On a replica an image's row arrives through the oplog
    /// but its file does not (blobs are not replicated yet): a missing file there is "not
    /// found" (404), while on a primary, which stored the file before the row, it is damage.
    pub fn media_blob(&self, media: &MediaDoc) -> Result<Blob> {
        match self.blobs.get(&media.sha256) {
            Err(Error::Corrupt(why))
                if !self.is_writable() && !self.blobs.contains(&media.sha256) =>
            {
                tracing::warn!(media = media.id, %why, "image file not on this replica");
                Err(Error::NotFound("image file on this replica"))
            }
            other => other,
        }
    }

    /// The digests of every blob file (one per distinct image).
    pub fn blob_digests(&self) -> Result<Vec<String>> {
        self.blobs.list()
    }

    /// Ids of the tweets that show an image, oldest first (empty: a candidate for removal).
    pub fn media_references(&self, id: u64) -> Result<Vec<u64>> {
        let media = self.media(id)?;
        let shard = self.user_shard(media.owner_id);
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
