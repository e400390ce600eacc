//! Tweets: posting, reading, deleting.

use std::sync::Arc;

use crate::batch::Batch;
use serde_json::{Map, Value};

use crate::accounts::merge_extra;
use crate::doc::{self, FanoutDoc, TweetDoc};
use crate::error::{Error, Result};
use crate::ids::now_unix_ms;
use crate::keys::{self, Counter, CF_COUNTERS, CF_HOME, CF_OUTBOX, CF_TWEETS, CF_USER_TWEETS};
use crate::node::Inner;
use crate::steps::Step;
use crate::text;

/// Most images on one tweet.
pub const MAX_MEDIA: usize = 4;

/// A tweet to post.
#[derive(Debug, Clone, Default)]
pub struct NewTweet {
    /// The text, as typed.
    pub text: String,
    /// Ids of images uploaded by the author (at most [`MAX_MEDIA`]).
    pub media: Vec<String>,
    /// Free-form metadata.
    pub extra: Map<String, Value>,
}

impl Inner {
    /// Posts a tweet as `author`. Acknowledged once the tweet, the author's timeline row and
    /// its pending fan-out are durable together; followers' feeds fill in asynchronously.
    pub fn post_tweet(&self, author: u64, req: NewTweet) -> Result<Arc<TweetDoc>> {
        // A tweet of images may say nothing; any other needs text.
        let text = if req.text.trim().is_empty() && !req.media.is_empty() {
            String::new()
        } else {
            text::validate_tweet(&req.text).map_err(|e| Error::invalid("text", e.to_string()))?
        };
        let media = self.attachable_media(author, &req.media)?;
        let mut extra = Map::new();
        merge_extra(&mut extra, req.extra, "extra")?;
        let profile = self.profile_doc(author)?.ok_or(Error::NotFound("user"))?;
        let shard = self.user_shard(author)?;
        let id = self.placement.mint_tweet(shard.index())?;
        let tweet = TweetDoc {
            id,
            author_id: author,
            author_handle: profile.handle,
            hashtags: text::extract_hashtags(&text),
            text,
            media,
            created_at_ms: now_unix_ms(),
            extra,
            rest: Map::new(),
            encoded: Default::default(),
        };
        let mut batch = Batch::new();
        batch.put(CF_TWEETS, keys::id_key(id), doc::encode(&tweet)?);
        batch.put(CF_USER_TWEETS, keys::pair_key(author, id), []);
        crate::media::reference_media(&mut batch, id, &tweet.media, true);
        // Authors see their own tweets in their home feed at once; it is on their shard.
        batch.put(CF_HOME, keys::pair_key(author, id), keys::id_key(author));
        batch.merge(
            CF_COUNTERS,
            keys::counter_key(author, Counter::Tweets),
            keys::counter_value(1),
        );
        let job = FanoutDoc::Post { author_id: author };
        batch.put(CF_OUTBOX, keys::id_key(id), doc::encode(&job)?);
        shard.write(batch)?;
        // A crash before these lines loses nothing: the index replays stored tweets at start.
        // The tweet is stored and acknowledged whatever the index says: a failure to index it
        // costs its search hits only, so it is logged rather than failing the post.
        if let Err(e) = self.hashtags.insert(&tweet) {
            tracing::error!(tweet = id, error = %e, "tweet not added to the hashtag index");
        }
        let tweet = Arc::new(tweet);
        self.cache.insert_new(Arc::clone(&tweet));
        self.enqueue_fanout(id);
        Ok(tweet)
    }

    /// One tweet.
    pub fn tweet(&self, id: u64) -> Result<Arc<TweetDoc>> {
        self.tweet_doc(id)?.ok_or(Error::NotFound("tweet"))
    }

    /// Reads a tweet document through the hot-tweet cache; None if it does not exist (or
    /// was deleted).
    pub(crate) fn tweet_doc(&self, id: u64) -> Result<Option<Arc<TweetDoc>>> {
        // Cached copies of a primary's tweets are its answers too.
        if let Some(s) = self.placement.of_id(id) {
            self.check_lease_of(s)?;
        }
        let ticket = match self.cache.get(id) {
            Ok(hit) => return Ok(Some(hit)),
            Err(ticket) => ticket,
        };
        let shard = match self.tweet_shard(id) {
            Ok(Some(shard)) if self.reads_here(shard.index()) => shard,
            // A replica copy may lag: read at the primary. Cached, since this copy sees the
            // deletes (the ticket refuses a read older than an invalidation).
            Ok(Some(_)) => {
                let tweet = self.step(Step::Tweet { id })?.tweet()?.map(Arc::new);
                if let Some(t) = &tweet {
                    self.cache.insert_read(Arc::clone(t), ticket);
                }
                return Ok(tweet);
            }
            Ok(None) => return Ok(None),
            // Held elsewhere: read where it is, not cached here (its deletes are not seen
            // here to invalidate it).
            Err(Error::NotHere(_)) => {
                return Ok(self.step(Step::Tweet { id })?.tweet()?.map(Arc::new))
            }
            Err(e) => return Err(e),
        };
        match shard.get(CF_TWEETS, &keys::id_key(id))? {
            Some(bytes) => {
                let tweet = Arc::new(doc::decode::<TweetDoc>(&bytes)?);
                self.cache.insert_read(Arc::clone(&tweet), ticket);
                Ok(Some(tweet))
            }
            None => Ok(None),
        }
    }

    /// Deletes a tweet as `actor`; only its author may. It leaves every feed: hydration
    /// skips it at once and a delete fan-out removes its feed rows.
    pub fn delete_tweet(&self, actor: u64, id: u64) -> Result<()> {
        let tweet = self.tweet(id)?;
        if tweet.author_id != actor {
            return Err(Error::Forbidden("you can only delete your own tweets"));
        }
        let _guard = self.lock_user(actor);
        let shard = self.user_shard(actor)?;
        if !shard.contains(CF_TWEETS, &keys::id_key(id))? {
            return Err(Error::NotFound("tweet"));
        }
        let mut batch = Batch::new();
        batch.delete(CF_TWEETS, keys::id_key(id));
        batch.delete(CF_USER_TWEETS, keys::pair_key(actor, id));
        batch.delete(CF_HOME, keys::pair_key(actor, id));
        crate::media::reference_media(&mut batch, id, &tweet.media, false);
        batch.merge(
            CF_COUNTERS,
            keys::counter_key(actor, Counter::Tweets),
            keys::counter_value(-1),
        );
        let job = FanoutDoc::Delete { author_id: actor };
        batch.put(CF_OUTBOX, keys::id_key(id), doc::encode(&job)?);
        shard.write(batch)?;
        self.cache.invalidate(id);
        self.hashtags.remove(id)?;
        self.enqueue_fanout(id);
        Ok(())
    }
}
