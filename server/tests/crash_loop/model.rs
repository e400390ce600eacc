//! What the crash loop's clients know: every write they sent, whether it was acknowledged,
//! and from that the state a restarted node must show.
//!
//! Order: every write takes a number from one global sequence before it is sent and another
//! when its answer arrives, so "acknowledged before that was sent" is `done < sent`. All
//! writes acting as one user come from one client thread, one at a time, so a user's writes
//! (and so every follow edge's writes) are totally ordered, and at most one of them is in
//! flight when the node is killed.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

/// A user of the test: index in `Model::users`, id and a bearer token (tokens survive
/// restarts, so the run logs in once).
pub struct User {
    /// The numeric user id, as the API spells it.
    pub id: String,
    /// A bearer token.
    pub token: String,
}

/// One write as a client saw it.
#[derive(Debug, Clone)]
pub struct Event {
    /// What was asked.
    pub write: Write,
    /// Sequence number taken just before sending.
    pub sent: u64,
    /// Sequence number taken when the 2xx answer arrived; None when no answer arrived
    /// (the node died first): the write may or may not have happened.
    pub done: Option<u64>,
}

/// The writes the loop makes.
#[derive(Debug, Clone)]
pub enum Write {
    /// `POST /tweet`; `id` from the answer.
    Post {
        author: usize,
        text: String,
        id: Option<String>,
    },
    /// `POST` (follow) or `DELETE` (unfollow) `/{follower}/follow/{followee}`.
    Edge {
        follower: usize,
        followee: usize,
        follow: bool,
    },
    /// `PATCH /{user}/profile` setting every field the test looks at.
    Profile { user: usize, state: ProfileState },
}

/// The profile fields a test edit sets. Every edit sets all of them (the `extra` keys too,
/// `tmp` to null half the time, which removes it), so the last edit that happened decides
/// the whole visible state.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileState {
    /// `display_name`.
    pub display_name: String,
    /// `bio`.
    pub bio: String,
    /// `extra.seq`.
    pub seq: u64,
    /// `extra.tmp`, absent when None.
    pub tmp: Option<String>,
}

impl ProfileState {
    /// The PATCH body that sets this state.
    pub fn patch(&self) -> Value {
        json!({
            "display_name": self.display_name,
            "bio": self.bio,
            "extra": {"seq": self.seq, "tmp": self.tmp},
        })
    }

    /// Whether a profile as served shows exactly this state.
    pub fn shown_by(&self, profile: &Value) -> bool {
        let mut extra = Map::new();
        extra.insert("seq".into(), json!(self.seq));
        if let Some(tmp) = &self.tmp {
            extra.insert("tmp".into(), json!(tmp));
        }
        profile["display_name"] == self.display_name.as_str()
            && profile["bio"] == self.bio.as_str()
            && profile["extra"] == Value::Object(extra)
    }
}

/// Where a posted tweet stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PostState {
    /// Acknowledged: must be there after every restart.
    Acked,
    /// Unanswered and not looked for yet.
    Unknown,
    /// Unanswered, but found after the restart: from now on it must stay.
    Found,
    /// Unanswered and missing after the restart: it must never appear later.
    Absent,
}

/// A tweet the loop tried to post.
#[derive(Debug, Clone)]
pub struct Post {
    /// Index of the author.
    pub author: usize,
    /// The text, unique in the run.
    pub text: String,
    /// The id, once known.
    pub id: Option<String>,
    /// Sequence number taken before sending.
    pub sent: u64,
    /// Where it stands.
    pub state: PostState,
    /// The cycle it was posted in.
    pub cycle: usize,
}

impl Post {
    /// Whether the node must show it (acknowledged, or seen after a restart).
    pub fn must_exist(&self) -> bool {
        matches!(self.state, PostState::Acked | PostState::Found)
    }
}

/// One follow or unfollow of an edge.
#[derive(Debug, Clone, Copy)]
pub struct EdgeWrite {
    /// Follow (true) or unfollow.
    pub follow: bool,
    /// Sequence number of the answer; None if it never came.
    pub done: Option<u64>,
}

/// A user's profile as far as the clients know it.
#[derive(Debug, Clone, Default)]
pub struct ProfileKnown {
    /// The state of the last acknowledged edit (or the last one seen after a restart).
    pub settled: Option<ProfileState>,
    /// An unanswered edit sent after it: the node may show either.
    pub maybe: Option<ProfileState>,
}

/// Everything the clients did and know.
#[derive(Default)]
pub struct Model {
    /// The users, by index.
    pub users: Vec<User>,
    /// Every post attempted, in the order the clients logged them.
    pub posts: Vec<Post>,
    /// The writes of each (follower, followee) edge, in order.
    pub edges: HashMap<(usize, usize), Vec<EdgeWrite>>,
    /// Each user's profile.
    pub profiles: Vec<ProfileKnown>,
    /// Writes acknowledged over the run.
    pub acked: usize,
    /// Writes left unanswered over the run.
    pub indeterminate: usize,
}

impl Model {
    /// Records one client's log of a cycle.
    pub fn record(&mut self, cycle: usize, events: Vec<Event>) {
        for event in events {
            match event.done {
                Some(_) => self.acked += 1,
                None => self.indeterminate += 1,
            }
            match event.write {
                Write::Post { author, text, id } => self.posts.push(Post {
                    author,
                    text,
                    id,
                    sent: event.sent,
                    state: match event.done {
                        Some(_) => PostState::Acked,
                        None => PostState::Unknown,
                    },
                    cycle,
                }),
                Write::Edge {
                    follower,
                    followee,
                    follow,
                } => self
                    .edges
                    .entry((follower, followee))
                    .or_default()
                    .push(EdgeWrite {
                        follow,
                        done: event.done,
                    }),
                Write::Profile { user, state } => {
                    let known = &mut self.profiles[user];
                    match event.done {
                        Some(_) => {
                            known.settled = Some(state);
                            known.maybe = None;
                        }
                        None => known.maybe = Some(state),
                    }
                }
            }
        }
    }

    /// Whether `follower` surely follows `followee`: Some only when the edge's last write
    /// was acknowledged (or it was never written: not following).
    pub fn edge_state(&self, follower: usize, followee: usize) -> Option<bool> {
        match self.edges.get(&(follower, followee)).and_then(|w| w.last()) {
            None => Some(false),
            Some(w) => w.done.map(|_| w.follow),
        }
    }

    /// Since when `follower` has surely followed `followee` without a break: the answer
    /// sequence number of the first acknowledged follow after the edge's last unfollow
    /// (answered or not). Every tweet by `followee` sent after it must reach the feed.
    pub fn following_since(&self, follower: usize, followee: usize) -> Option<u64> {
        let writes = self.edges.get(&(follower, followee))?;
        let start = writes
            .iter()
            .rposition(|w| !w.follow)
            .map_or(0, |last_unfollow| last_unfollow + 1);
        writes[start..].iter().find_map(|w| w.done)
    }

    /// The tweets that must be in `user`'s home feed: their own and those of every author
    /// they have followed without a break since before the tweet was sent.
    pub fn feed_due(&self, user: usize) -> Vec<&Post> {
        let since: Vec<Option<u64>> = (0..self.users.len())
            .map(|author| self.following_since(user, author))
            .collect();
        self.posts
            .iter()
            .filter(|p| p.must_exist())
            .filter(|p| p.author == user || since[p.author].is_some_and(|s| s < p.sent))
            .collect()
    }
}
