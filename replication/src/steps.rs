//! Shard steps between nodes, over the replication endpoint's mutual-TLS QUIC connections.
//!
//! A step stream carries one `Step` frame (the engine's step as JSON, with the cluster name
//! and the shard) and one `StepReply` back (the engine's reply, or its failure, as JSON). The
//! receiving node runs it with `Node::run_step`, which refuses a shard it does not hold. The
//! sending side is the engine's `Remote`: it looks up which node holds the shard in the
//! routes the cluster map gives ([`Replication::route_shard`]) and blocks its (never async)
//! caller until the answer comes or [`STEP_TIMEOUT`] passes.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chirp_engine::{Error as EngineError, Remote, Reply, ShardId, Step, StepFailure};

use crate::error::{Error, Result};
use crate::frame::{ErrorCode, Frame};
use crate::link::{self, FrameReader};
use crate::{follower, lock, Replication};

/// How long a step may take end to end before its caller gets `Unavailable`.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves a step stream: runs the step here and sends its reply or failure back.
pub(crate) async fn serve(
    repl: &Arc<Replication>,
    send: &mut quinn::SendStream,
    cluster: String,
    shard: u32,
    body: Vec<u8>,
) -> Result<()> {
    if cluster != repl.config.cluster {
        return Err(Error::Refused {
            code: ErrorCode::BadRequest,
            message: format!("this node is in cluster {:?}", repl.config.cluster),
        });
    }
    let step: Step = serde_json::from_slice(&body).map_err(|e| Error::Refused {
        code: ErrorCode::BadRequest,
        message: format!("not a step: {e}"),
    })?;
    let node = Arc::clone(&repl.node);
    let (outcome, writes) = tokio::task::spawn_blocking(move || {
        chirp_engine::track_writes(|| node.run_step(shard as usize, step))
    })
    .await
    .map_err(|e| Error::Connection(e.to_string()))?;
    // A step that wrote answers once its writes are acknowledged as the shard requires.
    let outcome = match (outcome, writes.is_empty()) {
        (Ok(reply), false) => match repl.wait_replicated(&writes).await {
            Ok(()) => Ok(reply),
            Err(e) => Err(EngineError::Unavailable(e.to_string())),
        },
        (other, _) => other,
    };
    let reply = match outcome {
        Ok(reply) => Frame::StepReply {
            ok: true,
            body: to_json(&reply)?,
        },
        Err(e) => Frame::StepReply {
            ok: false,
            body: to_json(&StepFailure::from_error(&e))?,
        },
    };
    link::send(send, &reply).await
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Connection(format!("encoding a step: {e}")))
}

/// The engine's way to other nodes' shards.
pub(crate) struct Steps {
    repl: Weak<Replication>,
    runtime: tokio::runtime::Handle,
}

impl Steps {
    pub(crate) fn new(repl: &Arc<Replication>, runtime: tokio::runtime::Handle) -> Self {
        Steps {
            repl: Arc::downgrade(repl),
            runtime,
        }
    }
}

impl Remote for Steps {
    fn run(&self, shard: ShardId, step: &Step) -> chirp_engine::Result<Reply> {
        let repl = self
            .repl
            .upgrade()
            .ok_or_else(|| EngineError::Unavailable("replication is shutting down".into()))?;
        let addr = lock(&repl.routes)
            .get(&shard)
            .copied()
            .ok_or(EngineError::NotHere(shard))?;
        let call =
            async { tokio::time::timeout(STEP_TIMEOUT, send_step(&repl, addr, shard, step)).await };
        match self.runtime.block_on(call) {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(failure))) => Err(failure.into_error()),
            Ok(Err(e)) => Err(EngineError::Unavailable(format!(
                "shard {shard} at {addr}: {e}"
            ))),
            Err(_) => Err(EngineError::Unavailable(format!(
                "shard {shard} at {addr} did not answer within {STEP_TIMEOUT:?}"
            ))),
        }
    }
}

/// Sends one step to `addr` and reads its answer: the reply, or the failure it ran into.
async fn send_step(
    repl: &Arc<Replication>,
    addr: SocketAddr,
    shard: ShardId,
    step: &Step,
) -> Result<std::result::Result<Reply, StepFailure>> {
    let upstream = Arc::clone(
        lock(&repl.upstreams)
            .entry(addr)
            .or_insert_with(|| Arc::new(follower::Upstream::new(addr))),
    );
    let conn = upstream.get(&repl.endpoint).await?;
    let (mut send, recv) = conn.open_bi().await?;
    link::send(
        &mut send,
        &Frame::Step {
            cluster: repl.config.cluster.clone(),
            shard: shard as u32,
            body: to_json(step)?,
        },
    )
    .await?;
    let _ = send.finish();
    match link::refused(FrameReader::new(recv).next().await?)? {
        Frame::StepReply { ok: true, body } => serde_json::from_slice(&body)
            .map(Ok)
            .map_err(|e| Error::Connection(format!("not a step reply: {e}"))),
        Frame::StepReply { ok: false, body } => serde_json::from_slice(&body)
            .map(Err)
            .map_err(|e| Error::Connection(format!("not a step failure: {e}"))),
        other => Err(Error::Connection(format!(
            "expected a step reply, got {other:?}"
        ))),
    }
}
